package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// common are the flags every data command has.
type common struct {
	config string
	json   bool
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "", "config file (default $CMKD_CONFIG, else cmkd-data/cmkd.yaml)")
	fs.BoolVar(&c.json, "json", false, "print JSON instead of text")
}

// open loads the config and opens the store and Key Vault client; logs of
// warnings and worse go to stderr, as text.
func (c *common) open(ctx context.Context, stderr io.Writer, withNATS bool) (*deps, error) {
	cfg, err := loadConfig(configPath(c.config))
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return openDeps(ctx, cfg, log, withNATS)
}

// emit prints v as JSON with --json, else the text that text returns.
func (c *common) emit(w io.Writer, v any, text func() string) error {
	if c.json {
		return json.NewEncoder(w).Encode(v)
	}
	_, err := io.WriteString(w, text())
	return err
}

// isTerminal reports whether w is a character device (an interactive
// terminal), where progress bars and aligned lines make sense.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressBar draws done/total on one terminal line.
func progressBar(w io.Writer, done, total int) {
	const width = 40
	if total <= 0 {
		return
	}
	n := done * width / total
	bar := make([]byte, width)
	for i := range bar {
		if i < n {
			bar[i] = '#'
		} else {
			bar[i] = '.'
		}
	}
	fmt.Fprintf(w, "\r[%s] %d/%d DEKs", bar, done, total)
	if done >= total {
		fmt.Fprintln(w)
	}
}

// args checks the positional argument count.
func args(fs *flag.FlagSet, n int, names string) error {
	if fs.NArg() != n {
		return usagef("%s: want %s, got %d argument(s)", fs.Name(), names, fs.NArg())
	}
	return nil
}

// stdinReader is where put reads a value from; tests replace it.
var stdinReader io.Reader = os.Stdin

// flagSet reports whether the flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// storeCommand finishes the usual command: parse argv, check for n
// arguments, open the store, run fn, close.
func storeCommand(ctx context.Context, c *common, fs *flag.FlagSet, argv []string, n int, names string,
	stderr io.Writer, fn func(d *deps) error) error {
	if err := parse(fs, argv); err != nil {
		return err
	}
	if err := args(fs, n, names); err != nil {
		return err
	}
	d, err := c.open(ctx, stderr, false)
	if err != nil {
		return err
	}
	defer d.Close()
	return fn(d)
}

// clean makes s safe to print as one line of a terminal: it is quoted
// (strconv.Quote) if it holds a control character or invalid UTF-8, so
// that data others chose — a record key, a reason carrying Key Vault's
// message — can neither break the one line per item nor send escape
// sequences to the terminal. Text that starts with a quote is quoted too,
// so that a quoted line always means an escaped one.
func clean(s string) string {
	if !utf8.ValidString(s) || strings.ContainsFunc(s, unsafeRune) || strings.HasPrefix(s, `"`) {
		return strconv.Quote(s)
	}
	return s
}

// unsafeRune: control characters and invisible format characters (such as
// the right-to-left override, which can make a line read differently).
func unsafeRune(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }
