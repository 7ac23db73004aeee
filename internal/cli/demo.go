package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/internal/verify"
)

func demoCmd(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("demo", io, "Shows seqrelay working on embedded defaults: appends N events to a fresh SQLite store,\n"+
		"delivers them to an embedded NATS with JetStream, reads the stream back and verifies it.")
	n := fs.Int("events", 100000, "number of events")
	size := fs.Int("payload-size", 256, "payload bytes per event")
	dir := fs.String("dir", "", "directory for the store and NATS data (default: a temporary one, removed afterwards)")
	stf := addStreamFlags(fs)
	df := addDispatcherFlags(fs)
	logger := logFlags(fs, "warn")
	lg, err := parseChecked(fs, args, logger, io.Err, stf.validate, func() error {
		switch {
		case *n < 1:
			return usagef("--events %d: must be at least 1", *n)
		case *size < 2:
			return usagef("--payload-size %d: must be at least 2", *size)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "seqrelay-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}

	st := &stack{}
	defer st.Close()
	sf := &storeFlags{store: filepath.Join(*dir, "events.db"), data: *dir}
	if st.log, _, err = sf.open(ctx, true); err != nil {
		return err
	}
	nf := &natsFlags{port: 0}
	if st.conn, err = nf.connect(*dir); err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "seqrelay demo: %d events of %d bytes; store %s; embedded NATS %s\n", *n, *size, sf.store, st.conn.url)

	start := time.Now()
	if err := appendDemoEvents(ctx, st.log, *n, *size); err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "appended %d events in %s\n", *n, time.Since(start).Round(time.Millisecond))
	desc, err := stf.ensure(ctx, st.conn.nc)
	if err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "stream: %s\n", desc)
	if st.d, err = newDispatcher(st.log, st.conn, stf, df, false, lg); err != nil {
		return err
	}

	start = time.Now()
	if err := st.d.Start(ctx); err != nil {
		return err
	}
	if err := waitDelivered(ctx, st.d, uint64(*n), io); err != nil {
		st.d.Stop(context.Background())
		return err
	}
	elapsed := time.Since(start)
	if err := st.d.Stop(ctx); err != nil {
		return err
	}
	rate := float64(*n) / elapsed.Seconds()

	js, err := jetstream.New(st.conn.nc)
	if err != nil {
		return err
	}
	vctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	rep, err := verify.Stream(vctx, js, stf.name)
	if err != nil {
		return err
	}
	s := st.d.State()
	fmt.Fprintf(io.Out, "delivered:   %d\n", rep.Messages)
	fmt.Fprintf(io.Out, "in order:    %s\n", yesNo(rep.InOrder))
	fmt.Fprintf(io.Out, "duplicates:  %d\n", rep.Duplicates)
	fmt.Fprintf(io.Out, "gaps:        %d\n", rep.Gaps)
	fmt.Fprintf(io.Out, "events/s:    %.0f (%d events in %s)\n", rate, *n, elapsed.Round(time.Millisecond))
	fmt.Fprintf(io.Out, "final state: LastAckedSeqNum=%d LastObservedSeqNum=%d LastCheckpoint=%d\n",
		s.LastAckedSeqNum, s.LastObservedSeqNum, s.LastCheckpoint)
	if !rep.ExactlyOnce(1, uint64(*n)) {
		return fmt.Errorf("verification failed: %s", rep)
	}
	return nil
}

func appendDemoEvents(ctx context.Context, log eventlog.Log, n, size int) error {
	const chunk = 10000
	batch := make([]eventlog.Event, 0, chunk)
	for i := 1; i <= n; i++ {
		batch = append(batch, eventlog.Event{Type: "demo.created", Payload: demoPayload(i, size)})
		if len(batch) == chunk || i == n {
			if _, err := log.Append(ctx, batch...); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}

// demoPayload is a JSON object of exactly size bytes (at least {"n":i}).
func demoPayload(i, size int) []byte {
	b := fmt.Appendf(nil, `{"n":%d,"pad":"`, i)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// waitDelivered waits until the dispatcher acknowledged n events, printing
// progress; it fails when delivery halts.
func waitDelivered(ctx context.Context, d *dispatcher.Dispatcher, n uint64, io IO) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	last := time.Now()
	for {
		s := d.Status()
		if s.LastAckedSeqNum >= n {
			fmt.Fprintf(io.Out, "delivering... %d/%d\n", s.LastAckedSeqNum, n)
			return nil
		}
		if s.Halted {
			return fmt.Errorf("delivery halted: %s", s.LastError)
		}
		if time.Since(last) >= 250*time.Millisecond {
			last = time.Now()
			fmt.Fprintf(io.Out, "delivering... %d/%d\n", s.LastAckedSeqNum, n)
		}
		select {
		case <-ctx.Done():
			return errors.New("interrupted")
		case <-t.C:
		}
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
