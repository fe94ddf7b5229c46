package main

import (
	"context"
	"fmt"
	"io"
	"strings"
)

const maxStdinValue = 1 << 20

func runPut(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlags("put", "put TENANT KEY [--value V]   (value from stdin without --value)", stderr)
	c.register(fs)
	value := fs.String("value", "", "the value; read from stdin when not given")
	if err := parse(fs, argv); err != nil {
		return err
	}
	if err := args(fs, 2, "TENANT KEY"); err != nil {
		return err
	}
	v := []byte(*value)
	if !flagSet(fs, "value") {
		var err error
		if v, err = io.ReadAll(io.LimitReader(stdinReader, maxStdinValue+1)); err != nil {
			return fmt.Errorf("read value from stdin: %w", err)
		}
		if len(v) > maxStdinValue {
			return fmt.Errorf("put %s/%s: value on stdin exceeds %d bytes", fs.Arg(0), fs.Arg(1), maxStdinValue)
		}
	}
	d, err := c.open(ctx, stderr, false)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.store.Put(ctx, fs.Arg(0), fs.Arg(1), v); err != nil {
		return err
	}
	return c.emit(stdout, map[string]any{"tenant": fs.Arg(0), "key": fs.Arg(1), "bytes": len(v)}, func() string { return "" })
}

func runGet(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlags("get", "get TENANT KEY   (the value to stdout)", stderr)
	c.register(fs)
	return storeCommand(ctx, &c, fs, argv, 2, "TENANT KEY", stderr, func(d *deps) error {
		v, err := d.store.Get(ctx, fs.Arg(0), fs.Arg(1))
		if err != nil {
			return err
		}
		if c.json {
			return c.emit(stdout, map[string]any{"tenant": fs.Arg(0), "key": fs.Arg(1), "value": v}, nil)
		}
		_, err = stdout.Write(v)
		return err
	})
}

func runDel(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlags("del", "del TENANT KEY", stderr)
	c.register(fs)
	return storeCommand(ctx, &c, fs, argv, 2, "TENANT KEY", stderr, func(d *deps) error {
		if err := d.store.Delete(ctx, fs.Arg(0), fs.Arg(1)); err != nil {
			return err
		}
		return c.emit(stdout, map[string]string{"deleted": fs.Arg(1)}, func() string { return "" })
	})
}

func runLs(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlags("ls", "ls TENANT", stderr)
	c.register(fs)
	return storeCommand(ctx, &c, fs, argv, 1, "TENANT", stderr, func(d *deps) error {
		keys := []string{} // --json prints [] for none, as tenant list does
		after := ""
		for {
			page, err := d.store.List(ctx, fs.Arg(0), after, 1000)
			if err != nil {
				return err
			}
			keys = append(keys, page...)
			if len(page) < 1000 {
				break
			}
			after = page[len(page)-1]
		}
		return c.emit(stdout, keys, func() string {
			var b strings.Builder
			for _, k := range keys {
				b.WriteString(clean(k) + "\n") // keys are others' data; --json has them exact
			}
			return b.String()
		})
	})
}
