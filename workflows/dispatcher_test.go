package workflows_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"github.com/stretchr/testify/suite"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/seqrelay/seqrelay/activities"
	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/worker"
	"github.com/seqrelay/seqrelay/workflows"
)

var acts *activities.Activities

// fakeLog stands in for the event log and the stream in workflow unit
// tests: DeliverBatch delivers up to BatchSize of the events up to head,
// folding them with the real Tracker rules.
type fakeLog struct {
	mu          sync.Mutex
	head        uint64
	pos         uint64 // where the last batch ended
	calls       []activities.DeliverBatchInput
	checkpoints []uint64
	times       []time.Time // of checkpoints, virtual
}

func (f *fakeLog) setHead(h uint64) {
	f.mu.Lock()
	f.head = h
	f.mu.Unlock()
}

func (f *fakeLog) deliver(_ context.Context, in activities.DeliverBatchInput) (activities.DeliverBatchResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, in)
	t := in.Tracker
	from := t.CheckpointTarget()
	to := min(f.head, from+uint64(in.MaxEvents))
	for s := from + 1; s <= to; s++ {
		t.Observe(s, true)
	}
	t.Ack(to)
	f.pos = to
	return activities.DeliverBatchResult{Tracker: t, Published: to - from, Head: f.head}, nil
}

// idleWait is how long a batch takes on the workflow clock: a real batch
// long-polls for MaxBatchDuration when there is nothing to deliver.
func (f *fakeLog) idleWait() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pos >= f.head {
		return workflows.DefaultBatchDuration
	}
	return 0
}

func (f *fakeLog) ncalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

type workflowSuite struct {
	suite.Suite
	testsuite.WorkflowTestSuite
	env *testsuite.TestWorkflowEnvironment
	log *fakeLog
}

func TestWorkflow(t *testing.T) { suite.Run(t, new(workflowSuite)) }

func (s *workflowSuite) SetupTest() {
	s.env = s.NewTestWorkflowEnvironment()
	s.env.SetTestTimeout(time.Minute)
	worker.Register(s.env, &activities.Activities{})
	s.log = &fakeLog{}
	s.env.OnActivity(acts.SaveCheckpoint, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.CheckpointInput) error {
		s.log.mu.Lock()
		defer s.log.mu.Unlock()
		s.log.checkpoints = append(s.log.checkpoints, in.Seq)
		s.log.times = append(s.log.times, s.env.Now())
		return nil
	}).Maybe()
}

// onDeliver mocks DeliverBatch with the fake log, and LoadCheckpoint.
func (s *workflowSuite) onDeliver() {
	s.onLoad(0, 0)
	s.env.OnActivity(acts.DeliverBatch, mock.Anything, mock.Anything).AfterFn(s.log.idleWait).Return(s.log.deliver)
}

// onLoad mocks LoadCheckpoint: it returns cp after delay.
func (s *workflowSuite) onLoad(cp uint64, delay time.Duration) {
	s.env.OnActivity(acts.LoadCheckpoint, mock.Anything, mock.Anything).After(delay).Return(cp, nil).Maybe()
}

// at runs f after d of virtual time.
func (s *workflowSuite) at(d time.Duration, f func()) { s.env.RegisterDelayedCallback(f, d) }

func (s *workflowSuite) query() workflows.Status {
	v, err := s.env.QueryWorkflow(workflows.QueryState)
	s.Require().NoError(err)
	var st workflows.Status
	s.Require().NoError(v.Get(&st))
	return st
}

func (s *workflowSuite) stopAt(d time.Duration) {
	s.at(d, func() { s.env.SignalWorkflow(workflows.SignalStop, nil) })
}

func (s *workflowSuite) result() workflows.Status {
	s.Require().True(s.env.IsWorkflowCompleted())
	s.Require().NoError(s.env.GetWorkflowError())
	var st workflows.Status
	s.Require().NoError(s.env.GetWorkflowResult(&st))
	return st
}

func input() workflows.Input {
	return workflows.Input{DispatcherID: "orders", BatchSize: 100, Config: dispatcher.Config{
		CheckpointInterval: 5 * time.Second, StallTimeout: time.Minute, StallCheckInterval: 10 * time.Second,
		BaseRetryInterval: time.Second, MaxRetryInterval: 8 * time.Second,
	}}
}

// The loop folds batch results into State; stop checkpoints and completes.
func (s *workflowSuite) TestLoopFoldsBatchesIntoState() {
	s.log.setHead(250)
	s.onDeliver()
	s.at(time.Minute, func() {
		st := s.query()
		s.Equal(dispatcher.State{LastAckedSeqNum: 250, LastObservedSeqNum: 250, LastCheckpoint: 250}, st.State)
		s.EqualValues(250, st.Published)
		s.EqualValues(250, st.Head)
		s.Zero(st.Lag)
		s.log.setHead(300)
	})
	s.stopAt(2 * time.Minute)
	s.env.ExecuteWorkflow(workflows.DispatcherWorkflow, input())
	st := s.result()
	s.Equal(dispatcher.State{LastAckedSeqNum: 300, LastObservedSeqNum: 300, LastCheckpoint: 300}, st.State)
	s.EqualValues(300, st.Published)
	s.GreaterOrEqual(st.Batches, uint64(4), "250 events in batches of 100, then 50 more")
	s.False(st.Recovering)
	for _, c := range s.log.calls {
		s.Equal("orders", c.DispatcherID)
		s.Equal("default", c.EventLog)
		s.Equal("SEQRELAY", c.Stream)
		s.Equal(100, c.MaxEvents)
	}
}

// A failing batch is retried by the activity retry policy with the
// configured initial and maximum intervals (coefficient 2).
func (s *workflowSuite) TestFailingBatchRetriedWithConfiguredBackoff() {
	s.log.setHead(10)
	s.onLoad(0, 0)
	var attempts []time.Time
	s.env.OnActivity(acts.DeliverBatch, mock.Anything, mock.Anything).AfterFn(s.log.idleWait).Return(
		func(ctx context.Context, in activities.DeliverBatchInput) (activities.DeliverBatchResult, error) {
			if len(attempts) < 6 {
				attempts = append(attempts, s.env.Now())
				return activities.DeliverBatchResult{}, errors.New("nats: no servers available for connection")
			}
			return s.log.deliver(ctx, in)
		})
	s.stopAt(5 * time.Minute)
	s.env.ExecuteWorkflow(workflows.DispatcherWorkflow, input())
	st := s.result()
	s.EqualValues(10, st.LastAckedSeqNum)
	s.Require().Len(attempts, 6)
	var gaps []time.Duration
	for i := 1; i < len(attempts); i++ {
		gaps = append(gaps, attempts[i].Sub(attempts[i-1]).Round(time.Second))
	}
	// Base 1s doubling, capped at Max 8s: the same rule as dispatcher.Backoff.
	s.Equal([]time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second}, gaps)
	b := dispatcher.BackoffFor(input().Config)
	for i, g := range gaps {
		s.Equal(b.Delay(i+1), g)
	}
}

// A batch whose activity never heartbeats is timed out by Temporal (the
// heartbeat timeout) and retried; delivery carries on.
func (s *workflowSuite) TestStalledBatchNeverHeartbeatingIsRetried() {
	s.log.setHead(5)
	s.onLoad(0, 0)
	var timeouts []time.Duration
	s.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		if info.ActivityType.Name == "DeliverBatch" {
			timeouts = append(timeouts, info.HeartbeatTimeout)
		}
	})
	s.env.OnActivity(acts.DeliverBatch, mock.Anything, mock.Anything).
		Return(activities.DeliverBatchResult{}, temporal.NewTimeoutError(enums.TIMEOUT_TYPE_HEARTBEAT, nil)).Once()
	s.env.OnActivity(acts.DeliverBatch, mock.Anything, mock.Anything).AfterFn(s.log.idleWait).Return(s.log.deliver)
	s.stopAt(10 * time.Minute)
	s.env.ExecuteWorkflow(workflows.DispatcherWorkflow, input())
	st := s.result()
	s.EqualValues(5, st.LastAckedSeqNum)
	s.Require().NotEmpty(timeouts)
	c := input().Config
	s.Equal(min(c.StallTimeout, 3*c.StallCheckInterval), timeouts[0], "three missed heartbeats, at most StallTimeout")
}

// A batch that never completes (lost: its attempts neither finish nor
// fail) is found by the workflow's stall-check timer, cancelled, and
// started again from the last acknowledged event.
func (s *workflowSuite) TestStallTimerCancelsALostBatch() {
	s.log.setHead(5)
	s.onLoad(0, 0)
	s.env.OnActivity(acts.DeliverBatch, mock.Anything, mock.Anything).After(10*time.Minute).
		Return(activities.DeliverBatchResult{}, errors.New("never seen")).Once()
	s.env.OnActivity(acts.DeliverBatch, mock.Anything, mock.Anything).AfterFn(s.log.idleWait).Return(s.log.deliver)
	s.at(time.Hour, func() {
		st := s.query()
		s.EqualValues(1, st.Stalls, "the stall timer cancelled the lost batch")
		s.Contains(st.LastError, "publish stalled")
		s.EqualValues(5, st.LastAckedSeqNum)
		s.env.SignalWorkflow(workflows.SignalStop, nil)
	})
	s.env.ExecuteWorkflow(workflows.DispatcherWorkflow, input())
	st := s.result()
	s.EqualValues(5, st.LastAckedSeqNum)
	s.EqualValues(1, st.Stalls)
}

// Checkpoints are stored every CheckpointInterval while there is progress,
// at the checkpoint target, and not at all while idle; stop stores the last.
func (s *workflowSuite) TestCheckpointTimer() {
	s.log.setHead(100)
	s.onDeliver()
	s.at(30*time.Second, func() { s.log.setHead(150) })
	s.stopAt(3 * time.Minute)
	s.env.ExecuteWorkflow(workflows.DispatcherWorkflow, input())
	st := s.result()
	s.EqualValues(150, st.LastCheckpoint)
	s.Equal([]uint64{100, 150}, s.log.checkpoints, "one checkpoint per burst of progress, none while idle")
	s.Equal(5*time.Second, s.log.times[0].Sub(s.env.Now().Add(-3*time.Minute)).Round(time.Second), "the first after one CheckpointInterval")
}

func (s *workflowSuite) TestNegativeCheckpointIntervalStoresNothing() {
	s.log.setHead(20)
	s.onDeliver()
	s.stopAt(time.Minute)
	in := input()
	in.Config.CheckpointInterval = -1
	s.env.ExecuteWorkflow(workflows.DispatcherWorkflow, in)
	st := s.result()
	s.EqualValues(20, st.LastAckedSeqNum)
	s.Zero(st.LastCheckpoint)
	s.Empty(s.log.checkpoints)
}

// Continue-as-new, when Temporal suggests it, carries the state unchanged.
func (s *workflowSuite) TestContinueAsNewCarriesStateUnchanged() {
	s.log.setHead(120)
	s.onDeliver()
	var before workflows.Status
	s.at(time.Minute, func() {
		before = s.query()
		s.env.SetContinueAsNewSuggested(true)
	})
	s.env.ExecuteWorkflow(workflows.DispatcherWorkflow, input())
	s.Require().True(s.env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	s.Require().True(errors.As(s.env.GetWorkflowError(), &can), "%v", s.env.GetWorkflowError())
	var next workflows.Input
	s.Require().NoError(converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	s.Require().NotNil(next.Carry)
	s.Equal("orders", next.DispatcherID)
	s.Equal(before.State, next.Carry.Tracker.S)
	s.Equal(dispatcher.State{LastAckedSeqNum: 120, LastObservedSeqNum: 120, LastCheckpoint: 120}, before.State)
	s.Equal(before.Published, next.Carry.Status.Published)
	s.Equal(1, next.Carry.Status.Runs)

	// The next run starts from exactly what was carried.
	env := s.NewTestWorkflowEnvironment()
	worker.Register(env, &activities.Activities{})
	env.OnActivity(acts.DeliverBatch, mock.Anything, mock.Anything).AfterFn(s.log.idleWait).Return(s.log.deliver)
	env.OnActivity(acts.SaveCheckpoint, mock.Anything, mock.Anything).Return(nil)
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(workflows.QueryState)
		s.Require().NoError(err)
		var st workflows.Status
		s.Require().NoError(v.Get(&st))
		s.Equal(next.Carry.Tracker.S.LastAckedSeqNum, st.LastAckedSeqNum)
		s.Equal(next.Carry.Status.Published, st.Published)
		s.Equal(2, st.Runs)
		env.SignalWorkflow(workflows.SignalStop, nil)
	}, time.Second)
	env.ExecuteWorkflow(workflows.DispatcherWorkflow, next)
	s.Require().NoError(env.GetWorkflowError())
}

// The state query answers in every phase: loading the checkpoint,
// delivering, paused, halted, stopping.
func (s *workflowSuite) TestQueryAnswersInEveryPhase() {
	s.onLoad(7, 10*time.Second)
	s.log.setHead(20)
	s.env.OnActivity(acts.DeliverBatch, mock.Anything, mock.Anything).AfterFn(s.log.idleWait).Return(s.log.deliver)
	s.at(time.Second, func() {
		st := s.query() // loading the checkpoint
		s.Zero(st.LastCheckpoint)
	})
	s.at(time.Minute, func() {
		st := s.query()
		s.Equal(dispatcher.State{LastAckedSeqNum: 20, LastObservedSeqNum: 20, LastCheckpoint: 20}, st.State)
		s.EqualValues(13, st.Published, "resumed after the stored checkpoint 7")
		s.env.SignalWorkflow(workflows.SignalPause, nil)
	})
	s.at(2*time.Minute, func() {
		st := s.query()
		s.True(st.Paused)
		n := s.log.ncalls()
		s.log.setHead(30)
		s.at(time.Minute, func() {
			s.Equal(n, s.log.ncalls(), "no batch while paused")
			s.EqualValues(20, s.query().LastAckedSeqNum)
			s.env.SignalWorkflow(workflows.SignalResume, nil)
		})
	})
	s.at(5*time.Minute, func() {
		st := s.query()
		s.False(st.Paused)
		s.EqualValues(30, st.LastAckedSeqNum)
		s.env.SignalWorkflow(workflows.SignalStop, nil)
	})
	s.env.ExecuteWorkflow(workflows.DispatcherWorkflow, input())
	st := s.result()
	s.True(st.Stopping)
	s.EqualValues(30, st.LastCheckpoint)
}

// A poison event under the stop policy halts the workflow (not fails it),
// keeping the progress made before it; resume retries after the fix.
func (s *workflowSuite) TestPoisonHaltsUntilResume() {
	s.log.setHead(10)
	s.onLoad(0, 0)
	fixed := false
	s.env.OnActivity(acts.DeliverBatch, mock.Anything, mock.Anything).AfterFn(s.log.idleWait).Return(
		func(ctx context.Context, in activities.DeliverBatchInput) (activities.DeliverBatchResult, error) {
			if fixed {
				return s.log.deliver(ctx, in)
			}
			t := in.Tracker
			for seq := uint64(1); seq <= 3; seq++ {
				t.Observe(seq, true)
			}
			t.Ack(3)
			perr := &dispatcher.PoisonError{Seq: 4, Type: "order.created", Err: errors.New("schema v3")}
			return activities.DeliverBatchResult{}, temporal.NewNonRetryableApplicationError(perr.Error(), activities.ErrTypePoisonEvent, perr,
				activities.DeliverBatchResult{Tracker: t, Published: 3})
		})
	s.at(time.Minute, func() {
		st := s.query()
		s.True(st.Halted)
		s.Contains(st.LastError, "event 4")
		s.EqualValues(3, st.LastAckedSeqNum)
		s.EqualValues(3, st.LastCheckpoint)
		fixed = true
		s.env.SignalWorkflow(workflows.SignalResume, nil)
	})
	s.stopAt(2 * time.Minute)
	s.env.ExecuteWorkflow(workflows.DispatcherWorkflow, input())
	st := s.result()
	s.False(st.Halted)
	s.EqualValues(10, st.LastAckedSeqNum)
}

// Failures that Temporal retries are reported by the activity with a
// signal, so that the state shows them while they last.
func (s *workflowSuite) TestReportedFailuresShowInState() {
	s.log.setHead(3)
	s.onDeliver()
	s.at(time.Second, func() {
		s.env.SignalWorkflow(activities.SignalBatchFailed, activities.BatchFailure{Attempt: 1, Error: "nats: timeout"})
	})
	s.at(2*time.Second, func() {
		st := s.query()
		s.EqualValues(1, st.Failures)
		s.Equal("nats: timeout", st.LastError)
	})
	s.stopAt(time.Minute)
	s.env.ExecuteWorkflow(workflows.DispatcherWorkflow, input())
	s.result()
}

// An invalid input fails the workflow at once with the message Validate
// gives, the same as the in-process dispatcher's.
func (s *workflowSuite) TestInvalidInputFailsWithValidateMessage() {
	in := workflows.Input{DispatcherID: "orders", Config: dispatcher.Config{BaseRetryInterval: time.Minute, MaxRetryInterval: time.Second}}
	s.env.ExecuteWorkflow(workflows.DispatcherWorkflow, in)
	err := s.env.GetWorkflowError()
	s.Require().Error(err)
	want := dispatcher.Config{BaseRetryInterval: time.Minute, MaxRetryInterval: time.Second}.Validate().Error()
	s.Contains(err.Error(), want)
	var appErr *temporal.ApplicationError
	s.Require().True(errors.As(err, &appErr))
	s.Equal(activities.ErrTypeInvalidInput, appErr.Type())
}

func TestInputValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   workflows.Input
		want string
	}{
		{"only the ID", workflows.Input{DispatcherID: "orders"}, ""},
		{"no ID", workflows.Input{}, "DispatcherID: invalid reader ID: it is empty"},
		{"bad stream", workflows.Input{DispatcherID: "a", Stream: "a.b"}, "Stream: stream name"},
		{"bad prefix", workflows.Input{DispatcherID: "a", SubjectPrefix: "a..b"}, "SubjectPrefix"},
		{"bad poison", workflows.Input{DispatcherID: "a", Poison: "drop"}, "Poison: unknown poison policy"},
		{"bad batch", workflows.Input{DispatcherID: "a", BatchSize: -1}, "BatchSize -1"},
		{"bad config", workflows.Input{DispatcherID: "a", Config: dispatcher.Config{StallTimeout: time.Second}}, "invalid config: StallCheckInterval is 30s: must be less than StallTimeout (1s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.in.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// A halted workflow that continues as new stays halted: the next run
// starts no batch until resume.
func (s *workflowSuite) TestHaltSurvivesContinueAsNew() {
	s.onLoad(0, 0)
	s.env.OnActivity(acts.DeliverBatch, mock.Anything, mock.Anything).Return(activities.DeliverBatchResult{},
		temporal.NewNonRetryableApplicationError("event 1 cannot be delivered", activities.ErrTypePoisonEvent, nil))
	s.at(time.Minute, func() {
		s.True(s.query().Halted)
		s.env.SetContinueAsNewSuggested(true)
		// A workflow task, to notice the suggestion (not pause: it would carry too).
		s.env.SignalWorkflow(activities.SignalBatchFailed, activities.BatchFailure{Error: "x"})
	})
	s.env.ExecuteWorkflow(workflows.DispatcherWorkflow, input())
	var can *workflow.ContinueAsNewError
	s.Require().True(errors.As(s.env.GetWorkflowError(), &can), "%v", s.env.GetWorkflowError())
	var next workflows.Input
	s.Require().NoError(converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	s.Require().True(next.Carry.Status.Halted)
	s.Require().False(next.Carry.Status.Paused)

	env := s.NewTestWorkflowEnvironment()
	worker.Register(env, &activities.Activities{})
	batches := 0
	env.OnActivity(acts.DeliverBatch, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.DeliverBatchInput) (activities.DeliverBatchResult, error) {
			batches++
			return activities.DeliverBatchResult{}, nil
		}).Maybe()
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.SignalStop, nil) }, time.Hour)
	env.ExecuteWorkflow(workflows.DispatcherWorkflow, next)
	s.Require().NoError(env.GetWorkflowError())
	s.Zero(batches, "a halted dispatcher starts no batch after continue-as-new")
}
