package nats_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cmkd-io/cmkd"
	natsdef "github.com/cmkd-io/cmkd/deploy/nats"
	"github.com/cmkd-io/cmkd/events"
	"github.com/cmkd-io/cmkd/events/natsq"
	"github.com/cmkd-io/cmkd/events/status"
	"github.com/cmkd-io/cmkd/internal/eventually"
	"github.com/cmkd-io/cmkd/internal/natstest"
)

// TestFilesNameWhatCmkdUses keeps the files' names and subjects the ones
// the code publishes to and consumes from.
func TestDeployStreamFilesNameWhatCmkdUses(t *testing.T) {
	for _, tc := range []struct {
		file, name, subject string
		retention           jetstream.RetentionPolicy
	}{
		{natsdef.StatusFile, status.DefaultStream, cmkd.StatusSubjects, jetstream.LimitsPolicy},
		{natsdef.EventsFile, natsq.DefaultStream, natsq.DefaultSubject, jetstream.WorkQueuePolicy},
		{natsdef.DLQFile, natsq.DefaultDLQStream, natsq.DefaultDLQSubject, jetstream.LimitsPolicy},
	} {
		c, err := natsdef.Stream(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		if c.Name != tc.name || !reflect.DeepEqual(c.Subjects, []string{tc.subject}) || c.Retention != tc.retention {
			t.Errorf("%s: stream %s subjects %v retention %v; cmkd uses %s on %s with %v", tc.file, c.Name, c.Subjects, c.Retention, tc.name, tc.subject, tc.retention)
		}
		if c.Storage != jetstream.FileStorage || c.Replicas != 3 {
			t.Errorf("%s: storage %v replicas %d; want file storage on 3 replicas", tc.file, c.Storage, c.Replicas)
		}
	}
	st, _ := natsdef.Stream(natsdef.StatusFile)
	if !st.DenyDelete || !st.DenyPurge {
		t.Errorf("%s: deny_delete %v deny_purge %v; the audit stream must refuse both", natsdef.StatusFile, st.DenyDelete, st.DenyPurge)
	}
	if st.Duplicates <= status.DefaultClaim {
		t.Errorf("%s: duplicate_window %s is not longer than the relay's claim %s: a retried publish could be doubled", natsdef.StatusFile, st.Duplicates, status.DefaultClaim)
	}
	c, err := natsdef.Consumer(natsdef.ConsumerFile)
	if err != nil {
		t.Fatal(err)
	}
	if c.Durable != natsq.DefaultDurable || c.AckPolicy != jetstream.AckExplicitPolicy {
		t.Errorf("%s: durable %q ack %v; want %q with explicit acks", natsdef.ConsumerFile, c.Durable, c.AckPolicy, natsq.DefaultDurable)
	}
}

// operatorPolicy are the fields where the files deliberately differ from
// what cmkd creates for itself (one replica, deletable: a development
// server): a production cluster's choice, not something cmkd relies on.
var operatorPolicy = map[string]bool{"Replicas": true, "DenyDelete": true, "DenyPurge": true, "Description": true}

// TestCodeCreatesWhatFilesDefine lets cmkd create its streams and consumer
// on one nats-server (create_streams) and applies the files on another,
// then compares the two as the servers store them: the definitions an
// operator applies are the ones cmkd would have made, field by field.
func TestDeployStreamsCodeCreatesWhatFilesDefine(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	byCode := natstest.JetStream(t, natstest.Start(t, -1, "").ClientURL())
	byFiles := natstest.JetStream(t, natstest.Start(t, -1, "").ClientURL())

	if _, err := status.EnsureStream(ctx, byCode, status.Config{Instance: "test"}); err != nil {
		t.Fatal(err)
	}
	src, err := natsq.New(byCode, natsq.Config{CreateStream: true, Decoder: events.NewDecoder(events.DecoderConfig{})})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- src.Run(rctx, func(context.Context, events.Event) error { return nil })
	}()
	// Pulling means Run is past creating the streams and the consumer.
	eventually.NoError(t, 10*time.Second, "the queue source to pull from its consumer", func() (bool, error) {
		c, err := byCode.Consumer(ctx, natsq.DefaultStream, natsq.DefaultDurable)
		if err != nil {
			return false, nil
		}
		ci, err := c.Info(ctx)
		return err == nil && ci.NumWaiting > 0, nil
	})
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	applyFiles(t, ctx, byFiles)

	for _, f := range []string{natsdef.StatusFile, natsdef.EventsFile, natsdef.DLQFile} {
		def, _ := natsdef.Stream(f)
		a, err := byCode.Stream(ctx, def.Name)
		if err != nil {
			t.Fatalf("cmkd did not create %s: %v", def.Name, err)
		}
		b, err := byFiles.Stream(ctx, def.Name)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, f, a.CachedInfo().Config, b.CachedInfo().Config)
	}
	def, _ := natsdef.Consumer(natsdef.ConsumerFile)
	a, err := byCode.Consumer(ctx, natsdef.EventsStream, def.Durable)
	if err != nil {
		t.Fatal(err)
	}
	b, err := byFiles.Consumer(ctx, natsdef.EventsStream, def.Durable)
	if err != nil {
		t.Fatal(err)
	}
	diff(t, natsdef.ConsumerFile, a.CachedInfo().Config, b.CachedInfo().Config)

	// What cmkd creates passes the check an operator's streams must pass.
	if err := natsdef.Check(ctx, byCode, true); err != nil {
		t.Errorf("check of the streams cmkd created: %v", err)
	}
	if err := natsdef.Check(ctx, byFiles, true); err != nil {
		t.Errorf("check of the streams made from the files: %v", err)
	}
}

// applyFiles does what `nats stream add --config` and `nats consumer add
// --config` do with the files. A single test server has no cluster, so the
// 3 replicas of the files become 1 here.
func applyFiles(t *testing.T, ctx context.Context, js jetstream.JetStream) {
	t.Helper()
	for _, f := range []string{natsdef.StatusFile, natsdef.EventsFile, natsdef.DLQFile} {
		c, err := natsdef.Stream(f)
		if err != nil {
			t.Fatal(err)
		}
		c.Replicas = 1
		if _, err := js.CreateStream(ctx, c); err != nil {
			t.Fatalf("create %s from %s: %v", c.Name, f, err)
		}
	}
	cc, err := natsdef.Consumer(natsdef.ConsumerFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, natsdef.EventsStream, cc); err != nil {
		t.Fatalf("create consumer from %s: %v", natsdef.ConsumerFile, err)
	}
}

// diff reports every field, outside operatorPolicy, where the server's
// copy of what the code made differs from its copy of the file.
func diff[T any](t *testing.T, file string, byCode, byFile T) {
	t.Helper()
	a, b := reflect.ValueOf(byCode), reflect.ValueOf(byFile)
	for i := range a.NumField() {
		name := a.Type().Field(i).Name
		if operatorPolicy[name] {
			continue
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			t.Errorf("%s: %s is %v in the file, cmkd creates %v", file, name, b.Field(i).Interface(), a.Field(i).Interface())
		}
	}
}

// TestCheckRefuses: a missing stream and a stream cmkd cannot rely on are
// refused, with the stream and the field named.
func TestDeployStreamCheckRefuses(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	js := natstest.JetStream(t, natstest.Start(t, -1, "").ClientURL())

	err := natsdef.Check(ctx, js, false)
	if !errors.Is(err, jetstream.ErrStreamNotFound) || !strings.Contains(err.Error(), status.DefaultStream) {
		t.Fatalf("check on an empty server: %v; want stream not found naming %s", err, status.DefaultStream)
	}

	st, _ := natsdef.Stream(natsdef.StatusFile)
	st.Replicas, st.Duplicates = 1, 20*time.Second
	if _, err := js.CreateStream(ctx, st); err != nil {
		t.Fatal(err)
	}
	err = natsdef.Check(ctx, js, false)
	if !errors.Is(err, natsdef.ErrIncompatible) || !strings.Contains(err.Error(), "duplicate_window") {
		t.Fatalf("check of a short duplicate window: %v; want incompatible naming duplicate_window", err)
	}

	// The status stream alone passes without the queue; with it the
	// missing work queue is named.
	st.Duplicates = 10 * time.Minute
	if _, err := js.UpdateStream(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := natsdef.Check(ctx, js, false); err != nil {
		t.Fatalf("check of the status stream: %v", err)
	}
	if err := natsdef.Check(ctx, js, true); err == nil || !strings.Contains(err.Error(), natsq.DefaultStream) {
		t.Fatalf("check with the queue and no %s: %v", natsq.DefaultStream, err)
	}
	// A work queue made with limits retention would keep every event for
	// ever and let two replicas handle the same one.
	ev, _ := natsdef.Stream(natsdef.EventsFile)
	ev.Replicas, ev.Retention = 1, jetstream.LimitsPolicy
	if _, err := js.CreateStream(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if err := natsdef.Check(ctx, js, true); !errors.Is(err, natsdef.ErrIncompatible) || !strings.Contains(err.Error(), "retention") {
		t.Fatalf("check of a limits-retention work queue: %v", err)
	}
}
