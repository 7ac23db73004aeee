// Package activities holds the Temporal activities of the dispatcher
// workflow: thin wrappers over the event log and the publisher. DeliverBatch
// moves a batch of events from the log to NATS (the payloads never pass
// through workflow history: only sequence numbers and counts come back);
// SaveCheckpoint and LoadCheckpoint persist and read the checkpoint.
//
// Activities are idempotent: a retried DeliverBatch first reconciles with
// what the stream already holds, so re-running it never duplicates.
package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/publish"
)

// Error types of non-retryable failures (temporal.ApplicationError.Type).
const (
	// ErrTypeInvalidInput: a configuration the activity cannot run with.
	ErrTypeInvalidInput = "InvalidInput"
	// ErrTypePoisonEvent: an event the poison policy says to stop on.
	ErrTypePoisonEvent = "PoisonEvent"
	// ErrTypeForeignTarget: the stream holds another writer's messages.
	ErrTypeForeignTarget = "ForeignTarget"
	// ErrTypeFenced: another workflow with this dispatcher ID publishes to
	// the stream.
	ErrTypeFenced = "Fenced"
)

// SignalBatchFailed is the signal a failed DeliverBatch attempt sends its
// workflow, so that the workflow's state shows failures while Temporal
// retries the activity.
const SignalBatchFailed = "batch-failed"

// BatchFailure is the payload of SignalBatchFailed.
type BatchFailure struct {
	Attempt int32
	Error   string
	Time    time.Time
}

// Activities are the dispatcher workflow's activities, with their
// dependencies: the event logs a worker serves, by name, and its NATS
// connection.
type Activities struct {
	// Logs are the event logs, by the name workflows give in Input.EventLog.
	Logs map[string]eventlog.Log
	// NATS is the connection to publish on.
	NATS *nats.Conn
	// Logger logs; nil means slog.Default().
	Logger *slog.Logger
}

// DeliverBatchInput is one batch: where to start, and how to deliver.
type DeliverBatchInput struct {
	DispatcherID  string
	EventLog      string
	Stream        string
	SubjectPrefix string
	// Tracker is the workflow's progress; delivery resumes after its
	// checkpoint target, or after the stream's newest event if later.
	Tracker dispatcher.Tracker
	// MaxEvents ends the batch after this many events.
	MaxEvents int
	// MaxDuration ends the batch after this long, or after this long idle.
	MaxDuration time.Duration
	Config      dispatcher.Config
	// Poison and DeadLetterSubject set the poison policy.
	Poison            dispatcher.PoisonPolicy
	DeadLetterSubject string
	MaxInFlight       int
}

// DeliverBatchResult is what a batch did: sequence numbers and counts only.
type DeliverBatchResult struct {
	Tracker      dispatcher.Tracker
	Published    uint64
	Skipped      uint64
	Duplicates   uint64
	DeadLettered uint64
	// Head is the newest event in the log at the end of the batch.
	Head uint64
}

// DeliverBatch reads events after the tracker's position and publishes
// them in order, until MaxEvents, MaxDuration, or MaxDuration idle; then it
// waits for every acknowledgement and returns the new tracker. It
// heartbeats every StallCheckInterval while delivery is healthy, so a
// stalled publish or a dead worker shows as a heartbeat timeout.
func (a *Activities) DeliverBatch(ctx context.Context, in DeliverBatchInput) (DeliverBatchResult, error) {
	log, err := a.log(in.EventLog)
	if err != nil {
		return DeliverBatchResult{}, err
	}
	creator, err := dispatcher.NewSubjectCreator(in.SubjectPrefix)
	if err != nil {
		return DeliverBatchResult{}, invalid(err)
	}
	// The attempts of one workflow are one writer: an abandoned attempt
	// that still publishes is not another dispatcher.
	opts := []dispatcher.Option{
		dispatcher.WithLogger(a.logger(ctx)),
		dispatcher.WithPoisonPolicy(in.Poison),
		dispatcher.WithWriterID(activity.GetInfo(ctx).WorkflowExecution.ID),
	}
	if in.DeadLetterSubject != "" {
		opts = append(opts, dispatcher.WithDeadLetterSubject(in.DeadLetterSubject))
	}
	if in.MaxInFlight > 0 {
		opts = append(opts, dispatcher.WithMaxInFlight(in.MaxInFlight))
	}
	relay, err := dispatcher.NewRelay(in.DispatcherID, log, creator, in.Config, opts...)
	if err != nil {
		return DeliverBatchResult{}, invalid(err)
	}
	pub, err := publish.NewJetStream(a.NATS, in.Stream)
	if err != nil {
		return DeliverBatchResult{}, invalid(err)
	}
	p := dispatcher.NewProgress(in.Tracker)
	err = relay.Deliver(ctx, pub, p, nil, dispatcher.RunOptions{
		MaxEvents:   in.MaxEvents,
		MaxDuration: in.MaxDuration,
		IdleReturn:  in.MaxDuration,
		// Report progress within a second rather than after a long poll.
		CaughtUpReturn: min(time.Second, in.MaxDuration),
		Heartbeat:      func(s dispatcher.State) { activity.RecordHeartbeat(ctx, s) },
	})
	st := p.Status()
	res := DeliverBatchResult{
		Tracker: p.Tracker(), Published: st.Published, Skipped: st.Skipped,
		Duplicates: st.Duplicates, DeadLettered: st.DeadLettered,
	}
	if err != nil {
		return res, a.failure(ctx, err, res)
	}
	if head, herr := log.Head(ctx); herr == nil {
		res.Head = head
	}
	return res, nil
}

// failure classifies a delivery error: poison events and foreign targets
// are non-retryable and carry the result as details (so the workflow keeps
// the progress made before them); anything else is retried by Temporal,
// after the workflow is told.
func (a *Activities) failure(ctx context.Context, err error, res DeliverBatchResult) error {
	switch {
	case errors.Is(err, dispatcher.ErrPoisonEvent):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypePoisonEvent, err, res)
	case errors.Is(err, dispatcher.ErrForeignTarget):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeForeignTarget, err, res)
	case errors.Is(err, dispatcher.ErrFenced):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeFenced, err, res)
	case ctx.Err() != nil:
		return err // cancelled or timed out: Temporal knows
	}
	a.tellWorkflow(ctx, err)
	return err
}

// tellWorkflow signals the workflow that this attempt failed. Best effort:
// the failure is reported by Temporal anyway.
func (a *Activities) tellWorkflow(ctx context.Context, err error) {
	info := activity.GetInfo(ctx)
	c := activity.GetClient(ctx)
	if c == nil || info.WorkflowExecution.ID == "" {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	f := BatchFailure{Attempt: info.Attempt, Error: err.Error(), Time: time.Now().UTC()}
	if serr := c.SignalWorkflow(sctx, info.WorkflowExecution.ID, info.WorkflowExecution.RunID, SignalBatchFailed, f); serr != nil {
		a.logger(ctx).Warn("could not report a failed batch to its workflow", "error", serr)
	}
}

// CheckpointInput names the checkpoint to store.
type CheckpointInput struct {
	DispatcherID string
	EventLog     string
	Seq          uint64
}

// SaveCheckpoint stores the dispatcher's checkpoint in its event log.
// Checkpoints never move backwards, so a retry or a late attempt is harmless.
func (a *Activities) SaveCheckpoint(ctx context.Context, in CheckpointInput) error {
	log, err := a.log(in.EventLog)
	if err != nil {
		return err
	}
	if err := log.Checkpoint(ctx, in.DispatcherID, in.Seq); err != nil {
		if errors.Is(err, eventlog.ErrInvalidReaderID) {
			return invalid(err)
		}
		return fmt.Errorf("store checkpoint %d of %q: %w", in.Seq, in.DispatcherID, err)
	}
	return nil
}

// LoadCheckpoint returns the dispatcher's stored checkpoint (0 if none).
func (a *Activities) LoadCheckpoint(ctx context.Context, in CheckpointInput) (uint64, error) {
	log, err := a.log(in.EventLog)
	if err != nil {
		return 0, err
	}
	cp, err := log.LastCheckpoint(ctx, in.DispatcherID)
	if errors.Is(err, eventlog.ErrInvalidReaderID) {
		return 0, invalid(err)
	}
	return cp, err
}

func (a *Activities) log(name string) (eventlog.Log, error) {
	l, ok := a.Logs[name]
	if !ok {
		names := make([]string, 0, len(a.Logs))
		for n := range a.Logs {
			names = append(names, n)
		}
		return nil, invalid(fmt.Errorf("this worker has no event log named %q (it has %v): start the workflow with one of those, or start a worker with --store %s=<path>", name, names, name))
	}
	return l, nil
}

func (a *Activities) logger(ctx context.Context) *slog.Logger {
	l := a.Logger
	if l == nil {
		l = slog.Default()
	}
	info := activity.GetInfo(ctx)
	return l.With("workflow_id", info.WorkflowExecution.ID, "activity", info.ActivityType.Name, "attempt", info.Attempt)
}

func invalid(err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidInput, err)
}
