package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/seqrelay/seqrelay/activities"
	"github.com/seqrelay/seqrelay/dispatcher"
)

// acts names the activities; its methods are only used as references.
var acts *activities.Activities

// DispatcherWorkflow delivers the events of one event log to one stream,
// for as long as it runs. It returns its final Status after a stop signal,
// and fails at once on an invalid Input with the validation message.
func DispatcherWorkflow(ctx workflow.Context, in Input) (Status, error) {
	if err := in.Validate(); err != nil {
		return Status{}, temporal.NewNonRetryableApplicationError("invalid input: "+oneLine(err), activities.ErrTypeInvalidInput, nil)
	}
	w := &run{ctx: ctx, in: in.withDefaults()}
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (Status, error) { return w.status(), nil }); err != nil {
		return Status{}, err
	}
	w.pause = workflow.GetSignalChannel(ctx, SignalPause)
	w.resume = workflow.GetSignalChannel(ctx, SignalResume)
	w.stop = workflow.GetSignalChannel(ctx, SignalStop)
	w.failed = workflow.GetSignalChannel(ctx, activities.SignalBatchFailed)
	if err := w.init(); err != nil {
		return w.status(), err
	}
	return w.loop()
}

// run is one workflow run's state. Everything here is deterministic.
type run struct {
	ctx workflow.Context
	in  Input
	t   dispatcher.Tracker
	st  Status

	batch        workflow.Future
	cancelBatch  workflow.CancelFunc
	batchStart   time.Time
	idleTimer    workflow.Future // a pause after a batch that came back early with nothing
	lastProgress time.Time
	stallTimer   workflow.Future
	cpTimer      workflow.Future
	cpFuture     workflow.Future
	cpSeq        uint64

	pause, resume, stop, failed workflow.ReceiveChannel
}

// init finds where to resume: the carried progress, the given State, or
// the checkpoint stored in the event log.
func (w *run) init() error {
	switch {
	case w.in.Carry != nil:
		w.t, w.st = w.in.Carry.Tracker, w.in.Carry.Status
	case w.in.State != nil:
		w.t = dispatcher.NewTracker(*w.in.State)
	default:
		ctx := workflow.WithActivityOptions(w.ctx, workflow.ActivityOptions{
			StartToCloseTimeout: w.in.Config.SeekTimeout,
			RetryPolicy:         batchRetryPolicy(w.in.Config),
		})
		var cp uint64
		if err := workflow.ExecuteActivity(ctx, acts.LoadCheckpoint, w.checkpointInput(0)).Get(ctx, &cp); err != nil {
			return fmt.Errorf("load the checkpoint of %q: %w", w.in.DispatcherID, err)
		}
		w.t = dispatcher.NewTracker(dispatcher.State{LastCheckpoint: cp})
	}
	w.st.Runs++
	w.in.Carry, w.in.State = nil, nil
	workflow.GetLogger(w.ctx).Info("dispatcher workflow running", "dispatcher", w.in.DispatcherID, "state", w.t.S, "run", w.st.Runs)
	return nil
}

func (w *run) loop() (Status, error) {
	for {
		w.drainSignals()
		// Between batches: stop, or continue as new when Temporal suggests it.
		if w.batch == nil && w.cpFuture == nil {
			if w.st.Stopping {
				return w.finish()
			}
			if workflow.GetInfo(w.ctx).GetContinueAsNewSuggested() {
				return w.continueAsNew()
			}
		}
		if w.batch == nil && w.idleTimer == nil && !w.st.Paused && !w.st.Stopping && !w.st.Halted {
			w.startBatch()
		}
		if w.batch != nil && w.stallTimer == nil {
			w.stallTimer = workflow.NewTimer(w.ctx, w.in.Config.StallCheckInterval)
		}
		if w.in.Config.CheckpointEnabled() && w.cpTimer == nil && w.cpFuture == nil && w.t.NeedsCheckpoint() {
			w.cpTimer = workflow.NewTimer(w.ctx, w.in.Config.CheckpointInterval)
		}
		sel := workflow.NewSelector(w.ctx)
		if w.batch != nil {
			sel.AddFuture(w.batch, w.onBatch)
		}
		if w.stallTimer != nil {
			sel.AddFuture(w.stallTimer, w.onStallCheck)
		}
		if w.idleTimer != nil {
			sel.AddFuture(w.idleTimer, func(workflow.Future) { w.idleTimer = nil })
		}
		if w.cpTimer != nil {
			sel.AddFuture(w.cpTimer, w.onCheckpointTimer)
		}
		if w.cpFuture != nil {
			sel.AddFuture(w.cpFuture, w.onCheckpointDone)
		}
		for _, ch := range []workflow.ReceiveChannel{w.pause, w.resume, w.stop, w.failed} {
			sel.AddReceive(ch, func(workflow.ReceiveChannel, bool) {}) // handled by drainSignals
		}
		sel.Select(w.ctx)
	}
}

// drainSignals applies every signal received so far.
func (w *run) drainSignals() {
	for w.pause.ReceiveAsync(nil) {
		w.st.Paused = true
		workflow.GetLogger(w.ctx).Info("paused")
	}
	for w.resume.ReceiveAsync(nil) {
		w.st.Paused = false
		if w.st.Halted {
			w.st.Halted = false
			workflow.GetLogger(w.ctx).Info("resumed after a halt: retrying", "resume_after", w.t.CheckpointTarget())
		}
	}
	for w.stop.ReceiveAsync(nil) {
		w.st.Stopping = true
	}
	var f activities.BatchFailure
	for w.failed.ReceiveAsync(&f) {
		w.recordFailure(f.Error)
	}
}

func (w *run) startBatch() {
	ctx, cancel := workflow.WithCancel(w.ctx)
	startToClose, heartbeat := w.in.batchTimeouts()
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: startToClose,
		HeartbeatTimeout:    heartbeat,
		RetryPolicy:         batchRetryPolicy(w.in.Config),
	})
	w.batch = workflow.ExecuteActivity(ctx, acts.DeliverBatch, activities.DeliverBatchInput{
		DispatcherID:      w.in.DispatcherID,
		EventLog:          w.in.EventLog,
		Stream:            w.in.Stream,
		SubjectPrefix:     w.in.SubjectPrefix,
		Tracker:           w.t,
		MaxEvents:         w.in.BatchSize,
		MaxDuration:       time.Duration(w.in.BatchDuration),
		Config:            w.in.Config,
		Poison:            w.in.Poison,
		DeadLetterSubject: w.in.DeadLetterSubject,
		MaxInFlight:       w.in.MaxInFlight,
	})
	w.cancelBatch = cancel
	w.batchStart = workflow.Now(w.ctx)
	w.lastProgress = w.batchStart
}

func (w *run) onBatch(f workflow.Future) {
	var res activities.DeliverBatchResult
	err := f.Get(w.ctx, &res)
	w.batch, w.cancelBatch = nil, nil
	now := workflow.Now(w.ctx)
	w.lastProgress = now
	if err == nil {
		if res.Tracker.S.LastObservedSeqNum == w.t.S.LastObservedSeqNum && now.Sub(w.batchStart) < time.Duration(w.in.BatchDuration)/2 {
			// Nothing new, and the batch did not wait for it (it long-polls
			// normally): wait ProcessInterval rather than spin.
			w.idleTimer = workflow.NewTimer(w.ctx, w.in.Config.ProcessInterval)
		}
		w.fold(res)
		w.st.Batches++
		w.st.LastBatchTime = now
		w.st.Recovering, w.st.ConsecutiveFailures = false, 0
		return
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		switch appErr.Type() {
		case activities.ErrTypePoisonEvent, activities.ErrTypeForeignTarget, activities.ErrTypeFenced, activities.ErrTypeInvalidInput:
			var partial activities.DeliverBatchResult
			if appErr.HasDetails() && appErr.Details(&partial) == nil {
				w.fold(partial)
			}
			w.halt(appErr.Error())
			return
		}
	}
	w.recordFailure(err.Error())
}

// fold takes a batch's progress. The batch started from w.t, so its
// tracker supersedes w.t, except for a checkpoint stored meanwhile.
func (w *run) fold(res activities.DeliverBatchResult) {
	cp := w.t.S.LastCheckpoint
	w.t = res.Tracker
	w.t.Checkpointed(cp)
	w.st.Published += res.Published
	w.st.Skipped += res.Skipped
	w.st.Duplicates += res.Duplicates
	w.st.DeadLettered += res.DeadLettered
	w.st.Head = max(w.st.Head, res.Head, w.t.S.LastObservedSeqNum)
}

// onStallCheck cancels a batch that reported nothing for too long and lets
// the loop start a new one from the last acknowledged event.
func (w *run) onStallCheck(workflow.Future) {
	w.stallTimer = nil
	if w.batch == nil {
		return
	}
	limit := w.in.stallThreshold()
	if since := workflow.Now(w.ctx).Sub(w.lastProgress); since >= limit {
		w.cancelBatch()
		w.batch, w.cancelBatch = nil, nil
		w.st.Stalls++
		w.recordFailure(fmt.Sprintf("%v: the batch reported nothing for %s (limit %s): cancelled, starting again after event %d",
			dispatcher.ErrStalled, since, limit, w.t.CheckpointTarget()))
	}
}

func (w *run) onCheckpointTimer(workflow.Future) {
	w.cpTimer = nil
	if !w.t.NeedsCheckpoint() {
		return
	}
	w.cpSeq = w.t.CheckpointTarget()
	w.cpFuture = workflow.ExecuteActivity(w.checkpointCtx(), acts.SaveCheckpoint, w.checkpointInput(w.cpSeq))
}

func (w *run) onCheckpointDone(f workflow.Future) {
	w.cpFuture = nil
	if err := f.Get(w.ctx, nil); err != nil {
		workflow.GetLogger(w.ctx).Warn("checkpoint failed; retrying at the next interval", "seq", w.cpSeq, "error", err)
		return
	}
	w.t.Checkpointed(w.cpSeq)
}

// checkpointCtx: one attempt within CheckpointTimeout; a failed checkpoint
// is retried at the next interval, as in the in-process runtime.
func (w *run) checkpointCtx() workflow.Context {
	return workflow.WithActivityOptions(w.ctx, workflow.ActivityOptions{
		StartToCloseTimeout: w.in.Config.CheckpointTimeout,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
}

func (w *run) checkpointInput(seq uint64) activities.CheckpointInput {
	return activities.CheckpointInput{DispatcherID: w.in.DispatcherID, EventLog: w.in.EventLog, Seq: seq}
}

// finish stores the final checkpoint and completes the workflow.
func (w *run) finish() (Status, error) {
	if w.in.Config.CheckpointEnabled() && w.t.NeedsCheckpoint() {
		seq := w.t.CheckpointTarget()
		if err := workflow.ExecuteActivity(w.checkpointCtx(), acts.SaveCheckpoint, w.checkpointInput(seq)).Get(w.ctx, nil); err != nil {
			w.recordFailure("final checkpoint: " + err.Error())
		} else {
			w.t.Checkpointed(seq)
		}
	}
	workflow.GetLogger(w.ctx).Info("dispatcher workflow stopped", "state", w.t.S)
	return w.status(), nil
}

func (w *run) continueAsNew() (Status, error) {
	in := w.in
	in.Carry = &Carry{Tracker: w.t, Status: w.st}
	workflow.GetLogger(w.ctx).Info("continuing as new", "state", w.t.S)
	return Status{}, workflow.NewContinueAsNewError(w.ctx, DispatcherWorkflow, in)
}

func (w *run) halt(reason string) {
	w.st.Halted = true
	w.st.LastError, w.st.LastErrorTime = reason, workflow.Now(w.ctx)
	workflow.GetLogger(w.ctx).Error("delivery halted; fix the cause, then signal resume", "error", reason, "state", w.t.S)
}

func (w *run) recordFailure(reason string) {
	w.st.Failures++
	w.st.ConsecutiveFailures++
	w.st.Recovering = true
	w.st.LastError, w.st.LastErrorTime = reason, workflow.Now(w.ctx)
	w.lastProgress = workflow.Now(w.ctx)
}

// status answers the "state" query.
func (w *run) status() Status {
	s := w.st
	s.State = w.t.S
	s.Lag = 0
	if s.Head > s.LastAckedSeqNum {
		s.Lag = s.Head - s.LastAckedSeqNum
	}
	return s
}

func oneLine(err error) string {
	msg := []byte(err.Error())
	for i, c := range msg {
		if c == '\n' {
			msg[i] = ';'
		}
	}
	return string(msg)
}
