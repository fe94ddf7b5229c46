// Command cmkd is the customer-managed-key lifecycle worker and its CLI.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "cmkd: no commands yet")
	os.Exit(2)
}
