package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/worker"
	"github.com/seqrelay/seqrelay/workflows"
)

// temporalFlags select the Temporal server, namespace and task queue.
type temporalFlags struct {
	address   string
	namespace string
	taskQueue string
}

func addTemporalFlags(fs *flag.FlagSet) *temporalFlags {
	t := &temporalFlags{}
	fs.StringVar(&t.address, "temporal", envOr("TEMPORAL_ADDRESS", "127.0.0.1:7233"), "Temporal frontend host:port (env TEMPORAL_ADDRESS)")
	fs.StringVar(&t.namespace, "namespace", envOr("TEMPORAL_NAMESPACE", "default"), "Temporal namespace (env TEMPORAL_NAMESPACE)")
	fs.StringVar(&t.taskQueue, "task-queue", workflows.DefaultTaskQueue, "Temporal task queue of the seqrelay workers")
	return t
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// dial connects to Temporal, failing within 10s with a clear message.
func (t *temporalFlags) dial(ctx context.Context, logger *slog.Logger) (client.Client, error) {
	if t.address == "" {
		return nil, usagef("--temporal is empty: give the Temporal frontend host:port, such as 127.0.0.1:7233")
	}
	if t.taskQueue == "" {
		return nil, usagef("--task-queue is empty")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var l sdklog.Logger
	if logger != nil {
		l = sdklog.NewStructuredLogger(logger)
	}
	c, err := client.DialContext(ctx, client.Options{HostPort: t.address, Namespace: t.namespace, Logger: l})
	if err != nil {
		return nil, fmt.Errorf("cannot reach Temporal at %s (%v): start it (seqrelay dev, or temporal server start-dev), or check --temporal", t.address, err)
	}
	if _, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: t.namespace}); err != nil {
		c.Close()
		var nf *serviceerror.NamespaceNotFound
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("namespace %q does not exist on Temporal at %s: create it (temporal operator namespace create %s) or check --namespace", t.namespace, t.address, t.namespace)
		}
		return nil, fmt.Errorf("Temporal at %s: %w", t.address, err)
	}
	return c, nil
}

func workerCmd(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("worker", io, "Runs a Temporal worker for dispatcher workflows: it polls the task queue and runs\n"+
		"DispatcherWorkflow and its activities with this event log and NATS connection. Run as many as you like.")
	tf := addTemporalFlags(fs)
	sf := addStoreFlags(fs)
	name := fs.String("event-log", workflows.DefaultEventLog, "name workflows use for this event log (Input.EventLog)")
	nf := addRemoteNATSFlags(fs)
	stf := addStreamFlags(fs)
	logger := logFlags(fs, "info")
	lg, err := parseChecked(fs, args, logger, io.Err, stf.validate)
	if err != nil {
		return err
	}
	if *name == "" {
		return usagef("--event-log is empty")
	}
	log, path, err := sf.open(ctx, false)
	if err != nil {
		return err
	}
	defer log.Close()
	conn, err := nf.connect(sf.data)
	if err != nil {
		return err
	}
	defer conn.Close()
	desc, err := stf.ensure(ctx, conn.nc)
	if err != nil {
		return err
	}
	c, err := tf.dial(ctx, lg)
	if err != nil {
		return err
	}
	defer c.Close()
	stop, err := startWorker(c, tf.taskQueue, *name, log, conn, lg)
	if err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "temporal:   %s (namespace %s, task queue %s)\n", tf.address, tf.namespace, tf.taskQueue)
	fmt.Fprintf(io.Out, "store:      %s (as event log %q)\n", path, *name)
	fmt.Fprintf(io.Out, "nats:       %s\n", redactURL(conn.url))
	fmt.Fprintf(io.Out, "stream:     %s\n", desc)
	fmt.Fprintln(io.Out, "worker running; Ctrl-C to stop")
	<-ctx.Done()
	stop()
	fmt.Fprintln(io.Out, "worker stopped")
	return nil
}

// startWorker starts a worker serving one event log.
func startWorker(c client.Client, taskQueue, logName string, log eventlog.Log, conn *connection, lg *slog.Logger) (func(), error) {
	w, err := worker.New(c, worker.Options{
		TaskQueue: taskQueue,
		Logs:      map[string]eventlog.Log{logName: log},
		NATS:      conn.nc,
		Logger:    lg,
	})
	if err != nil {
		return nil, err
	}
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("start the worker: %w", err)
	}
	return w.Stop, nil
}

// workflowFlags name one dispatcher workflow.
type workflowFlags struct {
	id         string
	workflowID string
}

func addWorkflowFlags(fs *flag.FlagSet) *workflowFlags {
	w := &workflowFlags{}
	fs.StringVar(&w.id, "id", "seqrelay", "dispatcher ID")
	fs.StringVar(&w.workflowID, "workflow-id", "", "workflow ID (default seqrelay-<id>)")
	return w
}

func (w *workflowFlags) resolve() (string, error) {
	if w.workflowID != "" {
		return w.workflowID, nil
	}
	if w.id == "" {
		return "", usagef("give --id or --workflow-id")
	}
	return WorkflowID(w.id), nil
}

// WorkflowID is the workflow ID of dispatcher id, by convention: one
// workflow per dispatcher, so Temporal runs at most one.
func WorkflowID(id string) string { return "seqrelay-" + id }

func startCmd(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("start", io, "Starts a dispatcher workflow (what `temporal workflow start --type DispatcherWorkflow` does),\n"+
		"after checking its input with the same rules as the in-process dispatcher.")
	tf := addTemporalFlags(fs)
	df := addDeliveryFlags(fs)
	workflowID := fs.String("workflow-id", "", "workflow ID (default seqrelay-<id>)")
	eventLog := fs.String("event-log", workflows.DefaultEventLog, "name of the event log on the workers")
	stream := fs.String("stream", "", "JetStream stream (default SEQRELAY)")
	prefix := fs.String("subject-prefix", "", "an event of type T goes to <prefix>.T (default seqrelay.events)")
	batch := fs.Int("batch-size", workflows.DefaultBatchSize, "most events one batch activity delivers")
	batchDuration := fs.Duration("batch-duration", workflows.DefaultBatchDuration, "longest one batch activity runs, and its long poll when idle (pause and stop wait for it)")
	if err := parse(fs, args); err != nil {
		return err
	}
	policy, err := df.validate()
	if err != nil {
		return err
	}
	in := workflows.Input{
		DispatcherID: df.id, EventLog: *eventLog, Stream: *stream, SubjectPrefix: *prefix,
		BatchSize: *batch, BatchDuration: dispatcher.Duration(*batchDuration), MaxInFlight: df.maxInFlight, Poison: policy, DeadLetterSubject: df.deadLetter, Config: df.cfg,
	}
	if err := in.Validate(); err != nil {
		return &usageError{flagNames(err)}
	}
	if *workflowID == "" {
		*workflowID = WorkflowID(df.id)
	}
	c, err := tf.dial(ctx, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        *workflowID,
		TaskQueue: tf.taskQueue,
		// One workflow per dispatcher: refuse rather than attach to a running one.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
	}, workflows.WorkflowName, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return fmt.Errorf("workflow %s is already running: one workflow per dispatcher; see it with: seqrelay state --workflow-id %s", *workflowID, *workflowID)
	}
	if err != nil {
		return fmt.Errorf("start workflow %s: %w", *workflowID, err)
	}
	fmt.Fprintf(io.Out, "started workflow %s (run %s) on task queue %s\n", run.GetID(), run.GetRunID(), tf.taskQueue)
	fmt.Fprintf(io.Out, "state: seqrelay state --workflow-id %s   or   temporal workflow query --workflow-id %s --type state\n", run.GetID(), run.GetID())
	return nil
}

// onWorkflow parses the flags of a command that acts on one dispatcher
// workflow (fs may hold more of its own), connects to Temporal and runs act.
func onWorkflow(ctx context.Context, fs *flag.FlagSet, args []string, act func(c client.Client, workflowID string) error) error {
	tf := addTemporalFlags(fs)
	wf := addWorkflowFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	id, err := wf.resolve()
	if err != nil {
		return err
	}
	c, err := tf.dial(ctx, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	return act(c, id)
}

func stateCmd(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("state", io, "Prints the state of a dispatcher workflow (its \"state\" query) as JSON.")
	return onWorkflow(ctx, fs, args, func(c client.Client, id string) error {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		v, err := c.QueryWorkflow(qctx, id, "", workflows.QueryState)
		var nf *serviceerror.NotFound
		switch {
		case errors.As(err, &nf):
			return fmt.Errorf("no workflow %s: start one with seqrelay start, or check --id / --workflow-id", id)
		case errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("workflow %s did not answer within 10s: is a seqrelay worker running on its task queue?", id)
		case err != nil:
			return fmt.Errorf("query workflow %s: %w", id, err)
		}
		var st workflows.Status
		if err := v.Get(&st); err != nil {
			return err
		}
		return printJSON(io, st)
	})
}

// signalCmd sends pause, resume or stop.
func signalCmd(signal, summary string) func(context.Context, []string, IO) error {
	return func(ctx context.Context, args []string, io IO) error {
		fs := newFlagSet(signal, io, summary)
		wait := true
		if signal == workflows.SignalStop {
			fs.BoolVar(&wait, "wait", true, "wait for the workflow to complete and print its final state")
		}
		return onWorkflow(ctx, fs, args, func(c client.Client, id string) error {
			err := c.SignalWorkflow(ctx, id, "", signal, nil)
			var nf *serviceerror.NotFound
			if errors.As(err, &nf) {
				return fmt.Errorf("no running workflow %s", id)
			}
			if err != nil {
				return fmt.Errorf("signal %s to %s: %w", signal, id, err)
			}
			fmt.Fprintf(io.Out, "sent %s to %s\n", signal, id)
			if signal != workflows.SignalStop || !wait {
				return nil
			}
			var st workflows.Status
			if err := c.GetWorkflow(ctx, id, "").Get(ctx, &st); err != nil {
				return fmt.Errorf("workflow %s: %w", id, err)
			}
			return printJSON(io, st)
		})
	}
}

func printJSON(io IO, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(io.Out, string(b))
	return err
}
