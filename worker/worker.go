// Package worker wires a Temporal worker for the dispatcher: it registers
// DispatcherWorkflow and the activities, with their real dependencies (the
// event logs and the NATS connection). Run as many workers as you like on
// the task queue: each dispatcher is one workflow, and its workflow ID makes
// it the only active one.
package worker

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/seqrelay/seqrelay/activities"
	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/workflows"
)

// Options are a worker's dependencies.
type Options struct {
	// TaskQueue to poll (default "seqrelay").
	TaskQueue string
	// Logs are the event logs the worker serves, by name; workflows choose
	// one with Input.EventLog ("default" unless given).
	Logs map[string]eventlog.Log
	// NATS is the connection activities publish on.
	NATS *nats.Conn
	// Logger logs activities; nil means slog.Default().
	Logger *slog.Logger
	// Worker tunes the Temporal worker (concurrency, identity, ...).
	Worker sdkworker.Options
}

// New returns a worker (not started) with the workflow and activities
// registered.
func New(c client.Client, o Options) (sdkworker.Worker, error) {
	switch {
	case c == nil:
		return nil, errors.New("worker: the Temporal client is nil")
	case o.NATS == nil:
		return nil, errors.New("worker: the NATS connection is nil")
	case len(o.Logs) == 0:
		return nil, errors.New("worker: no event log: give at least one")
	}
	for name, l := range o.Logs {
		if name == "" || l == nil {
			return nil, fmt.Errorf("worker: event log %q is nil or unnamed", name)
		}
	}
	if o.TaskQueue == "" {
		o.TaskQueue = workflows.DefaultTaskQueue
	}
	w := sdkworker.New(c, o.TaskQueue, o.Worker)
	Register(w, &activities.Activities{Logs: o.Logs, NATS: o.NATS, Logger: o.Logger})
	return w, nil
}

// Register registers the dispatcher workflow and the given activities on a
// worker or any other registry (a test environment, a replayer).
func Register(r sdkworker.Registry, a *activities.Activities) {
	r.RegisterWorkflowWithOptions(workflows.DispatcherWorkflow, workflow.RegisterOptions{Name: workflows.WorkflowName})
	if a != nil {
		r.RegisterActivity(a)
	}
}
