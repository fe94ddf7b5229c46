// Command reachable says, before `make test` runs, whether the PostgreSQL
// test server answers: where it does not, the PostgreSQL suites skip, and
// a skip deep in the output is easy to miss.
package main

import (
	"fmt"
	"os"

	"github.com/cmkd-io/cmkd/internal/pgtest"
)

func main() {
	url, err := pgtest.Reach()
	if err != nil {
		fmt.Fprintf(os.Stderr, "NOTE: %s. The PostgreSQL suites will be skipped.\n", pgtest.Unreachable(url, err))
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "PostgreSQL test server answers: its suites run.")
}
