package cli

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/seqrelay/seqrelay/internal/devtemporal"
	"github.com/seqrelay/seqrelay/workflows"
)

// DefaultDevTemporalPort is where `seqrelay dev` serves Temporal.
const DefaultDevTemporalPort = 7233

func devCmd(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("dev", io, "Runs everything the Temporal runtime needs in one process, for development:\n"+
		"a Temporal server (state in <data>/temporal.db), an embedded NATS with JetStream, the SQLite store\n"+
		"<data>/events.db, and a worker. Start dispatchers with `seqrelay start` or the temporal CLI.")
	data := fs.String("data", defaultDataDir(), "directory for the Temporal, NATS and event log files")
	port := fs.Int("temporal-port", DefaultDevTemporalPort, "Temporal frontend port (0: any free port)")
	namespace := fs.String("namespace", "default", "Temporal namespace to register and use")
	taskQueue := fs.String("task-queue", workflows.DefaultTaskQueue, "task queue of the worker")
	natsPort := fs.Int("nats-port", DefaultEmbeddedNATSPort, "port of the embedded NATS (0: any free port)")
	stf := addStreamFlags(fs)
	logger := logFlags(fs, "warn")
	lg, err := parseChecked(fs, args, logger, io.Err, stf.validate)
	if err != nil {
		return err
	}
	if *port < 0 || *port > 65535 {
		return usagef("--temporal-port %d: use a port from 1 to 65535, or 0 for any free port", *port)
	}

	srv, err := devtemporal.Start(devtemporal.Options{DatabaseFile: filepath.Join(*data, "temporal.db"), Port: *port, Namespace: *namespace})
	if err != nil {
		return err
	}
	defer srv.Stop()
	sf := &storeFlags{data: *data}
	log, path, err := sf.open(ctx, true)
	if err != nil {
		return err
	}
	defer log.Close()
	conn, err := (&natsFlags{port: *natsPort}).connect(*data)
	if err != nil {
		return err
	}
	defer conn.Close()
	desc, err := stf.ensure(ctx, conn.nc)
	if err != nil {
		return err
	}
	tf := &temporalFlags{address: srv.HostPort(), namespace: *namespace, taskQueue: *taskQueue}
	c, err := tf.dial(ctx, lg)
	if err != nil {
		return err
	}
	defer c.Close()
	stop, err := startWorker(c, *taskQueue, workflows.DefaultEventLog, log, conn, lg)
	if err != nil {
		return err
	}
	defer stop()

	fmt.Fprintf(io.Out, "temporal:   %s\n", srv.HostPort())
	fmt.Fprintf(io.Out, "namespace:  %s\n", *namespace)
	fmt.Fprintf(io.Out, "task queue: %s\n", *taskQueue)
	fmt.Fprintf(io.Out, "nats:       %s\n", conn.url)
	fmt.Fprintf(io.Out, "store:      %s\n", path)
	fmt.Fprintf(io.Out, "stream:     %s\n", desc)
	fmt.Fprintln(io.Out)
	fmt.Fprintf(io.Out, "start a dispatcher:  temporal workflow start --address %s --namespace %s --type %s --task-queue %s --workflow-id seqrelay-orders --input '{\"DispatcherID\": \"orders\"}'\n",
		srv.HostPort(), *namespace, workflows.WorkflowName, *taskQueue)
	fmt.Fprintf(io.Out, "               or:  seqrelay start --temporal %s --namespace %s --id orders\n", srv.HostPort(), *namespace)
	fmt.Fprintf(io.Out, "append events:       seqrelay append --store %s --type order.created --payload '{\"id\": 1}'\n", path)
	fmt.Fprintf(io.Out, "query its state:     temporal workflow query --address %s --namespace %s --workflow-id seqrelay-orders --type state\n", srv.HostPort(), *namespace)
	fmt.Fprintln(io.Out, "running; Ctrl-C to stop")
	<-ctx.Done()
	return nil
}
