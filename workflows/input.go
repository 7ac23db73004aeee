// Package workflows holds DispatcherWorkflow: the Temporal runtime of the
// dispatcher. A long-running workflow keeps the dispatcher's State and
// checkpoint in workflow state, runs activities that move batches of events
// from the event log to NATS, persists the checkpoint on a timer, watches
// for stalls, answers the "state" query, obeys pause, resume and stop
// signals, and continues as new when Temporal suggests it.
//
// The sequence rules are the dispatcher package's Tracker, the same code
// the in-process runtime runs; the workflow only schedules.
package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/seqrelay/seqrelay/activities"
	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/publish"
)

// Names operators use with the temporal CLI.
const (
	// WorkflowName is the workflow type: --type DispatcherWorkflow.
	WorkflowName = "DispatcherWorkflow"
	// QueryState returns Status: --type state.
	QueryState = "state"
	// SignalPause stops starting new batches (the running one finishes).
	SignalPause = "pause"
	// SignalResume resumes after a pause, or retries after a halt.
	SignalResume = "resume"
	// SignalStop finishes the running batch, stores the checkpoint and
	// completes the workflow.
	SignalStop = "stop"
	// DefaultTaskQueue is the task queue workers poll by default.
	DefaultTaskQueue = "seqrelay"
	// DefaultEventLog is the name of a worker's event log by default.
	DefaultEventLog = "default"
	// DefaultBatchSize is the most events one batch activity delivers.
	DefaultBatchSize = 50000
	// DefaultBatchDuration bounds one batch activity: it returns after this
	// long, or after this long without new events (a long poll).
	DefaultBatchDuration = 10 * time.Second
)

// Input starts a DispatcherWorkflow. Only DispatcherID is required:
//
//	temporal workflow start --type DispatcherWorkflow --task-queue seqrelay \
//	    --workflow-id seqrelay-orders --input '{"DispatcherID": "orders"}'
type Input struct {
	// DispatcherID names the dispatcher: its checkpoint and message IDs.
	DispatcherID string
	// EventLog names the event log on the workers (default "default").
	EventLog string `json:",omitempty"`
	// Stream is the JetStream stream (default "SEQRELAY").
	Stream string `json:",omitempty"`
	// SubjectPrefix: an event of type T goes to <prefix>.T (default "seqrelay.events").
	SubjectPrefix string `json:",omitempty"`
	// BatchSize is the most events one batch activity delivers (default 50000).
	BatchSize int `json:",omitempty"`
	// BatchDuration bounds one batch activity, and its long poll when the
	// log is idle (default "10s"). Pause and stop wait for the running
	// batch, so this is also how quickly they take effect.
	BatchDuration dispatcher.Duration `json:",omitempty"`
	// MaxInFlight bounds unacknowledged messages (default 4096).
	MaxInFlight int `json:",omitempty"`
	// Poison is "stop" (default) or "dead-letter".
	Poison dispatcher.PoisonPolicy `json:",omitempty"`
	// DeadLetterSubject is the dead-letter subject prefix.
	DeadLetterSubject string `json:",omitempty"`
	// Config is the seed's Config; zero fields take the defaults.
	// Durations are written "5s", "5m".
	Config dispatcher.Config
	// State, when set, is the progress to resume from; otherwise the
	// workflow resumes from the checkpoint stored in the event log.
	State *dispatcher.State `json:",omitempty"`
	// Carry is set by continue-as-new: progress and counters, exactly.
	Carry *Carry `json:",omitempty"`
}

// Carry is what a workflow run hands to the next one.
type Carry struct {
	Tracker dispatcher.Tracker
	Status  Status
}

// withDefaults fills every optional field.
func (in Input) withDefaults() Input {
	if in.EventLog == "" {
		in.EventLog = DefaultEventLog
	}
	if in.Stream == "" {
		in.Stream = publish.DefaultStream
	}
	if in.SubjectPrefix == "" {
		in.SubjectPrefix = publish.DefaultSubjectPrefix
	}
	if in.BatchSize == 0 {
		in.BatchSize = DefaultBatchSize
	}
	if in.BatchDuration == 0 {
		in.BatchDuration = dispatcher.Duration(DefaultBatchDuration)
	}
	if in.MaxInFlight == 0 {
		in.MaxInFlight = dispatcher.DefaultMaxInFlight
	}
	if in.Poison == "" {
		in.Poison = dispatcher.PoisonStop
	}
	if in.DeadLetterSubject == "" {
		in.DeadLetterSubject = dispatcher.DefaultDeadLetterSubject
	}
	in.Config = in.Config.WithDefaults()
	return in
}

// Validate checks the input with the same rules, and messages, as the
// in-process dispatcher.
func (in Input) Validate() error {
	var errs []error
	if err := eventlog.ValidateReaderID(in.DispatcherID); err != nil {
		errs = append(errs, fmt.Errorf("DispatcherID: %w", err))
	}
	in = in.withDefaults()
	if err := publish.ValidateStreamName(in.Stream); err != nil {
		errs = append(errs, fmt.Errorf("Stream: %w", err))
	}
	if err := dispatcher.ValidateSubject(in.SubjectPrefix); err != nil {
		errs = append(errs, fmt.Errorf("SubjectPrefix: %w", err))
	}
	if err := dispatcher.ValidateSubject(in.DeadLetterSubject); err != nil {
		errs = append(errs, fmt.Errorf("DeadLetterSubject: %w", err))
	}
	if _, err := dispatcher.ParsePoisonPolicy(string(in.Poison)); err != nil {
		errs = append(errs, fmt.Errorf("Poison: %w", err))
	}
	if in.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("BatchSize %d: must be positive", in.BatchSize))
	}
	if in.BatchDuration < 0 {
		errs = append(errs, fmt.Errorf("BatchDuration %s: must be positive", time.Duration(in.BatchDuration)))
	}
	if in.MaxInFlight < 0 {
		errs = append(errs, fmt.Errorf("MaxInFlight %d: must be positive", in.MaxInFlight))
	}
	if err := in.Config.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// batchRetryPolicy maps BaseRetryInterval and MaxRetryInterval onto the
// activity retry policy: the same backoff as the in-process runtime.
func batchRetryPolicy(c dispatcher.Config) *temporal.RetryPolicy {
	b := dispatcher.BackoffFor(c)
	return &temporal.RetryPolicy{
		InitialInterval:        b.Base,
		BackoffCoefficient:     dispatcher.BackoffCoefficient,
		MaximumInterval:        b.Max,
		MaximumAttempts:        0, // until it works, or the workflow gives up on a stall
		NonRetryableErrorTypes: []string{activities.ErrTypeInvalidInput, activities.ErrTypePoisonEvent, activities.ErrTypeForeignTarget, activities.ErrTypeFenced},
	}
}

// batchTimeouts: an attempt delivers for at most BatchDuration, waits at
// most StallTimeout for acks, and at most SeekTimeout to begin. It
// heartbeats every StallCheckInterval while healthy (a stalled publish is
// failed by the attempt itself after StallTimeout), so three missed
// heartbeats, at most StallTimeout, mean the worker is gone: Temporal then
// retries the batch on another worker.
func (in Input) batchTimeouts() (startToClose, heartbeat time.Duration) {
	return time.Duration(in.BatchDuration) + in.Config.StallTimeout + in.Config.SeekTimeout,
		min(in.Config.StallTimeout, 3*in.Config.StallCheckInterval)
}

// stallThreshold is how long the workflow waits for a batch (all its
// attempts, with backoff) to report anything before it cancels it and
// starts over. Temporal's heartbeat timeout catches a stalled attempt
// first; this timer is the backstop for a batch that is lost altogether.
func (in Input) stallThreshold() time.Duration {
	startToClose, _ := in.batchTimeouts()
	return startToClose + in.Config.MaxRetryInterval
}
