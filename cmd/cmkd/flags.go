package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// errHelp means --help was asked for and printed: exit 0.
var errHelp = errors.New("help")

// newFlags returns a FlagSet that prints its usage to stderr and does not exit.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: cmkd %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, mapping -h to errHelp and bad flags to a usage error.
func parse(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return errHelp
	case err != nil:
		return usagef("%s: %v", fs.Name(), err)
	}
	return nil
}
