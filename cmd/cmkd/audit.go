package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/events/status"
)

func runAudit(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	sub := map[string]func(context.Context, []string, io.Writer, io.Writer) error{"tail": auditTail}
	return dispatch("audit", "tail", sub, ctx, argv, stdout, stderr)
}

func auditTail(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlags("audit tail", "audit tail [--since DURATION] [--tenant ID] [--follow] [--json] [--eventgrid [--listen ADDR]]", stderr)
	c.register(fs)
	since := fs.Duration("since", 0, "only events at most this old, e.g. 1h (default: all)")
	tenant := fs.String("tenant", "", "only this tenant's events")
	follow := fs.Bool("follow", false, "keep printing new events until interrupted")
	eg := fs.Bool("eventgrid", false, "read from the Event Grid status topic (status.eventgrid) instead of NATS: events published from now on")
	listen := fs.String("listen", "127.0.0.1:0", "with --eventgrid: where the webhook the topic delivers to listens")
	if err := parse(fs, argv); err != nil {
		return err
	}
	if err := args(fs, 0, "no arguments"); err != nil {
		return err
	}
	if *since < 0 {
		return usagef("audit tail: --since %s is negative; give an age such as 1h", *since)
	}
	cfg, err := loadConfig(configPath(c.config))
	if err != nil {
		return err
	}
	if *eg {
		if *since != 0 {
			return usagef("audit tail --eventgrid: --since cannot be met: Event Grid keeps no history (read NATS for that)")
		}
		return auditTailEventGrid(ctx, cfg, *listen, *tenant, c.json, stdout, stderr)
	}
	if cfg.NATS.URL == "" {
		return errors.New("audit tail: nats.url is not set in the config; point it at the NATS that holds CMKD_STATUS")
	}
	d := &deps{cfg: cfg}
	if err := d.connectNATS(); err != nil {
		return err
	}
	defer d.Close()
	return status.Tail(ctx, d.js, status.TailOptions{Since: *since, Tenant: *tenant, Follow: *follow}, func(e status.Received) error {
		return printStatus(stdout, e.StatusEvent, c.json)
	})
}

// printStatus writes one status event: its CloudEvent with --json, a
// readable line otherwise.
func printStatus(w io.Writer, e cmkd.StatusEvent, asJSON bool) error {
	if asJSON {
		body, err := e.MarshalCloudEvent()
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", body)
		return err
	}
	_, err := fmt.Fprintln(w, auditLine(e))
	return err
}

// auditLine is one readable line: time, tenant, kind, version, key and
// reason, then the rest of the data as key=value, as subscribers receive it.
func auditLine(e cmkd.StatusEvent) string {
	var data map[string]any
	if b, err := e.MarshalData(); err == nil {
		_ = json.Unmarshal(b, &data)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-12s %-17s %-32s %s", e.Time.Local().Format(time.DateTime), clean(e.Tenant), clean(string(e.Kind)),
		str(data["version"]), str(data["key"]))
	if r, ok := data["reason"]; ok {
		fmt.Fprintf(&b, "  %s", str(r))
	}
	keys := make([]string, 0, len(data))
	for k := range data {
		switch k {
		case "tenant", "version", "vault", "key", "reason":
		default:
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s=%s", clean(k), str(data[k]))
	}
	return b.String()
}

func str(v any) string {
	if v == nil {
		return "-"
	}
	return clean(fmt.Sprint(v))
}
