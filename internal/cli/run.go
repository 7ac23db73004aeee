package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/publish"
)

// stack is what the run and demo commands wire together.
type stack struct {
	log    eventlog.Log
	conn   *connection
	stream string
	d      *dispatcher.Dispatcher
}

func (s *stack) Close() {
	if s.conn != nil {
		s.conn.Close()
	}
	if s.log != nil {
		s.log.Close()
	}
}

// newDispatcher builds the in-process dispatcher over an open log and
// connection, publishing to the stream (or to core NATS when core is set).
func newDispatcher(log eventlog.Log, conn *connection, sf *streamFlags, df *dispatcherFlags, core bool, logger *slog.Logger) (*dispatcher.Dispatcher, error) {
	opts, err := df.options()
	if err != nil {
		return nil, err
	}
	var pub dispatcher.Publisher
	if core {
		pub, err = publish.NewCore(conn.nc, 0)
	} else {
		pub, err = publish.NewJetStream(conn.nc, sf.name)
	}
	if err != nil {
		return nil, err
	}
	w, err := eventlog.NewWatcher(log, df.id)
	if err != nil {
		return nil, err
	}
	creator, err := dispatcher.NewSubjectCreator(sf.prefix)
	if err != nil {
		return nil, err
	}
	return dispatcher.New(pub, w, creator, df.cfg, append(opts, dispatcher.WithLogger(logger))...)
}

func runCmd(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("run", io, "Delivers events from the event log to NATS JetStream until interrupted (Ctrl-C).\n"+
		"With no flags it uses an SQLite file in the data directory and an embedded NATS server.")
	sf := addStoreFlags(fs)
	nf := addNATSFlags(fs, DefaultEmbeddedNATSPort)
	stf := addStreamFlags(fs)
	df := addDispatcherFlags(fs)
	logger := logFlags(fs, "info")
	status := fs.Duration("status-interval", 10*time.Second, "how often to print the dispatcher's status (0: never)")
	target := fs.String("target", "jetstream", "jetstream (exactly once, in order, into --stream) or core (plain NATS subjects: at least once; see the README)")
	lg, err := parseChecked(fs, args, logger, io.Err, stf.validate)
	if err != nil {
		return err
	}
	if _, err := df.options(); err != nil {
		return err
	}
	if *target != "jetstream" && *target != "core" {
		return usagef("--target %q: use jetstream or core", *target)
	}
	core := *target == "core"

	st := &stack{}
	defer st.Close()
	var path string
	st.log, path, err = sf.open(ctx, false)
	if err != nil {
		return err
	}
	st.conn, err = nf.connect(sf.data)
	if err != nil {
		return err
	}
	desc := publish.CoreGuarantee
	if !core {
		if desc, err = stf.ensure(ctx, st.conn.nc); err != nil {
			return err
		}
	}
	st.d, err = newDispatcher(st.log, st.conn, stf, df, core, lg)
	if err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "store:      %s\n", path)
	if st.conn.embedded != nil {
		fmt.Fprintf(io.Out, "nats:       %s (embedded, JetStream data in %s)\n", st.conn.url, st.conn.embedded.StoreDir())
	} else {
		fmt.Fprintf(io.Out, "nats:       %s\n", redactURL(st.conn.url))
	}
	if core {
		fmt.Fprintf(io.Out, "target:     %s\n", desc)
	} else {
		fmt.Fprintf(io.Out, "stream:     %s\n", desc)
	}
	fmt.Fprintf(io.Out, "subjects:   %s.<event type>\n", stf.prefix)
	fmt.Fprintf(io.Out, "dispatcher: %s\n", df.id)

	if err := st.d.Start(ctx); err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "delivering from event %d; Ctrl-C to stop\n", st.d.State().LastCheckpoint+1)
	waitWithStatus(ctx, st.d, *status, io.Out)

	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = st.d.Stop(sctx)
	printStatus(io.Out, "stopped", st.d.Status())
	return err
}

// waitWithStatus waits for ctx, printing the status every interval.
func waitWithStatus(ctx context.Context, d *dispatcher.Dispatcher, every time.Duration, w io.Writer) {
	if every <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			printStatus(w, "status", d.Status())
		}
	}
}

func printStatus(w io.Writer, label string, s dispatcher.Status) {
	fmt.Fprintf(w, "%s: acked %d, observed %d, checkpoint %d, published %d, skipped %d, dead-lettered %d, failures %d",
		label, s.LastAckedSeqNum, s.LastObservedSeqNum, s.LastCheckpoint, s.Published, s.Skipped, s.DeadLettered, s.Failures)
	if s.Halted {
		fmt.Fprintf(w, ", HALTED: %s", s.LastError)
	} else if s.Recovering {
		fmt.Fprintf(w, ", recovering: %s", s.LastError)
	}
	fmt.Fprintln(w)
}
