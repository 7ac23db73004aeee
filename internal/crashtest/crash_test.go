package crashtest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/eventlog/sqlite"
	"github.com/seqrelay/seqrelay/internal/natsrv"
	"github.com/seqrelay/seqrelay/internal/natstest"
	"github.com/seqrelay/seqrelay/internal/verify"
	"github.com/seqrelay/seqrelay/publish"
)

// The stream the dispatcher delivers to, and its short de-duplication window.
const (
	streamName   = "CRASH"
	streamSubj   = "crash.>"
	subjPrefix   = "crash.events"
	dispatcherID = "crash"
	dedupeWindow = time.Second
)

// TestCrash runs the crash test once per dispatcher runtime.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash test runs the seqrelay binary for about half a minute; skipped under -short")
	}
	if runtime.GOOS == "windows" {
		t.Skip("the crash test kills child processes with SIGKILL and stops them with SIGINT")
	}
	cfg := loadConfig(t)
	for _, rt := range []dispatcherRuntime{inProcess{}, &temporalRuntime{}} {
		t.Run(rt.name(), func(t *testing.T) { crashTest(t, cfg, rt) })
	}
}

// crashTest appends cfg.events events while the runtime's dispatcher
// delivers them, kills the dispatcher and restarts NATS on a seeded
// schedule, waits until the stream holds every event, stops the dispatcher
// gracefully, and verifies the stream.
func crashTest(t *testing.T, cfg config, rt dispatcherRuntime) {
	t.Logf("seed %d: %d events over %s, %d kills, %d NATS restarts (replay: %s)",
		cfg.seed, cfg.events, cfg.duration, cfg.kills, cfg.natsRestarts, cfg.replay())
	bin := seqrelayBinary(t, cfg)

	// The work directory is kept when the test fails, for the post-mortem.
	dir, err := os.MkdirTemp("", "seqrelay-crash-"+rt.name()+"-")
	require.NoError(t, err)
	logFile, err := os.Create(filepath.Join(dir, "children.log"))
	require.NoError(t, err)
	e := &env{bin: bin, dir: dir, store: filepath.Join(dir, "events.db"), stream: streamName,
		subjects: streamSubj, prefix: subjPrefix, id: dispatcherID, dedupe: dedupeWindow, events: cfg.events}
	h := newHarness(rt, e, logFile)
	var sup *supervisor
	t.Cleanup(func() {
		for _, a := range h.actionList() {
			t.Log(a)
		}
		logFile.Close()
		if !t.Failed() {
			if cfg.keep {
				t.Logf("work directory kept (%s=1): %s", envKeep, dir)
			} else {
				os.RemoveAll(dir)
			}
			return
		}
		for _, p := range h.problemList() {
			t.Logf("problem: %s", p)
		}
		t.Logf("so far: %d events appended; %s", h.appended.Load(), h.chaosFigures(sup))
		t.Logf("FAILED with seed %d; replay: %s", cfg.seed, cfg.replay())
		t.Logf("work directory kept: %s (children.log: every child's output and the harness's actions; events.db; nats/)", dir)
		t.Logf("last lines of children.log:\n%s", tail(filepath.Join(dir, "children.log"), 150))
	})

	// The event log, NATS, and the stream with its short de-duplication window.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := sqlite.Open(ctx, e.store, sqlite.WithCreate())
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	srv, err := natsrv.Start(natsrv.Options{StoreDir: filepath.Join(dir, "nats")})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown) // after the goroutines that restart it have ended (cleanups run last first)
	e.natsURL = srv.URL()
	nc := natstest.Connect(t, srv.URL())
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	str, _, err := publish.EnsureStream(ctx, js, publish.StreamConfig{Name: streamName, Subjects: []string{streamSubj}, DuplicateWindow: dedupeWindow})
	require.NoError(t, err)
	require.Equal(t, dedupeWindow, str.CachedInfo().Config.Duplicates, "the stream's de-duplication window")
	rt.prepare(t, e)

	// The first dispatcher, up before the chaos begins.
	sup = startSupervisor(h)
	t.Cleanup(sup.close)
	h.action("NATS at %s, store %s, stream %s (de-duplication window %s)", e.natsURL, e.store, streamName, dedupeWindow)
	require.NoError(t, h.waitFor(60*time.Second, "the first dispatcher to start delivering", func() (bool, string) {
		return h.readies.Load() > 0, "it has not said it is delivering"
	}))

	// Appends and chaos, in parallel.
	plan := planChaos(cfg)
	start := time.Now()
	var wg sync.WaitGroup
	appendErr, chaosErr := make(chan error, 1), make(chan error, 1)
	wg.Go(func() { appendErr <- h.appendEvents(ctx, l, cfg, len(plan)) })
	wg.Go(func() { chaosErr <- h.runChaos(ctx, plan, sup, srv, js) })
	t.Cleanup(wg.Wait)
	t.Cleanup(cancel) // runs before wg.Wait
	appendBudget := 3*cfg.duration + 60*time.Second
	require.NoError(t, h.waitResult(appendErr, appendBudget, "the appends"))
	h.action("all %d events appended", cfg.events)
	require.NoError(t, h.waitResult(chaosErr, appendBudget, "the chaos schedule"))

	// Delivery of everything, then a graceful stop.
	var held uint64
	err = h.waitFor(cfg.timeout, fmt.Sprintf("the stream to hold %d messages", cfg.events), func() (bool, string) {
		if n, err := streamMsgs(ctx, js); err == nil {
			held = n
		}
		return held >= cfg.events, fmt.Sprintf("it holds %d; last dispatcher status: %s", held, h.status())
	})
	if err != nil { // what the stream holds may say why: a gap, a duplicate
		vctx, vcancel := context.WithTimeout(ctx, 30*time.Second)
		rep, verr := verify.Stream(vctx, js, streamName)
		vcancel()
		require.NoError(t, err, "the stream holds: %s (%v)", rep, verr)
	}
	elapsed := time.Since(start)
	h.action("the stream holds %d messages", held)
	stopped, err := sup.stop(60 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, 0, stopped.code, "%s stopped with SIGINT: %s; stderr: %s", stopped, stopped.state, stopped.lastWords(5))
	rt.checkStopped(t, e, stopped.stdout.snapshot())

	// The promise: 1..N, once each, in order, no gap; each the right event.
	vctx, vcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer vcancel()
	rep, err := verify.Stream(vctx, js, streamName)
	require.NoError(t, err)
	t.Logf("verified: %s", rep)
	t.Logf("figures: seed %d, %d events; messages %d, KeySeqNum %d..%d, in order %t, duplicates %d, gaps %d; "+
		"%s; delivered in %s", cfg.seed, cfg.events, rep.Messages, rep.First, rep.Last, rep.InOrder, rep.Duplicates, rep.Gaps,
		h.chaosFigures(sup), elapsed.Round(time.Millisecond))
	assert.True(t, rep.ExactlyOnce(1, cfg.events), "the stream must hold events 1..%d once each, in order: %s", cfg.events, rep)
	assert.EqualValues(t, cfg.events, rep.Messages, "messages")
	assert.EqualValues(t, 1, rep.First, "first KeySeqNum")
	assert.EqualValues(t, cfg.events, rep.Last, "last KeySeqNum")
	assert.True(t, rep.InOrder, "KeySeqNum strictly increasing")
	assert.Zero(t, rep.Duplicates, "duplicates")
	assert.Zero(t, rep.Gaps, "gaps")
	bad, first, err := checkContents(vctx, js, cfg.events)
	require.NoError(t, err)
	assert.Zero(t, bad, "messages whose subject, payload, metadata or Nats-Msg-Id are not those of their event; first: %s", first)

	// The schedule ran in full, and nothing went wrong on the side.
	assert.EqualValues(t, cfg.kills, sup.killed.Load(), "kills done")
	outages := h.outageList()
	require.Len(t, outages, cfg.natsRestarts, "NATS restarts done")
	if cfg.natsRestarts > 0 {
		var longest time.Duration
		for _, o := range outages {
			longest = max(longest, o.up.Sub(o.down))
		}
		assert.Greater(t, longest, dedupeWindow, "one NATS outage must outlast the de-duplication window")
	}
	assert.Empty(t, h.problemList(), "problems seen in the children's output or exits")
}

// action kinds of the chaos schedule.
type actionKind int

const (
	killDispatcher actionKind = iota
	restartNATS
)

// action is one step of the chaos schedule.
type action struct {
	kind    actionKind
	at      uint64        // runs once this many events are appended
	jitter  time.Duration // and this long after a burst of appends
	restart time.Duration // kill: delay before the next dispatcher starts
	early   bool          // kill: do not wait until the dispatcher says it delivers
	outage  time.Duration // restartNATS: how long NATS stays down
	killMid bool          // restartNATS: kill the dispatcher halfway through the outage
}

func (a action) String() string {
	if a.kind == killDispatcher {
		when := "once it delivers"
		if a.early {
			when = "whether or not it delivers yet"
		}
		return fmt.Sprintf("kill at %d appended, %s (+%s), restart after %s", a.at, when, a.jitter.Round(time.Microsecond), a.restart.Round(time.Microsecond))
	}
	s := fmt.Sprintf("NATS down at %d appended (+%s) for %s", a.at, a.jitter.Round(time.Microsecond), a.outage.Round(time.Millisecond))
	if a.killMid {
		s += ", killing the dispatcher halfway"
	}
	return s
}

// planChaos draws the schedule from the seed: cfg.natsRestarts outages,
// each begun under a delivering dispatcher (one of them longer than the
// de-duplication window, with one of the kills in its middle, so that the
// dispatcher is killed while it recovers and restarts while NATS is away) and
// the other kills, at random append counts between 5% and 90% of the
// events. Each action asks the appender for a burst of events and comes a
// few milliseconds after it is committed; most kills also wait until the
// dispatcher says it delivers (one in five does not, and may kill it while
// it starts). So actions often land while messages are in flight.
func planChaos(cfg config) []action {
	rng := rand.New(rand.NewPCG(cfg.seed, 2))
	lo := cfg.events * 5 / 100
	span := max(cfg.events*90/100-lo, 1)
	at := func() uint64 { return lo + rng.Uint64N(span) }
	kills := cfg.kills
	var plan []action
	for i := range cfg.natsRestarts {
		a := action{kind: restartNATS, at: at(), jitter: randDur(rng, 25*time.Millisecond)}
		if i == 0 {
			a.outage = 2*dedupeWindow + 500*time.Millisecond + randDur(rng, 500*time.Millisecond)
			if kills > 0 {
				a.killMid, kills = true, kills-1
			}
		} else {
			a.outage = 100*time.Millisecond + randDur(rng, 400*time.Millisecond)
		}
		plan = append(plan, a)
	}
	for range kills {
		plan = append(plan, action{kind: killDispatcher, at: at(), jitter: randDur(rng, 25*time.Millisecond),
			restart: randDur(rng, 300*time.Millisecond), early: rng.IntN(5) == 0})
	}
	slices.SortStableFunc(plan, func(a, b action) int { return cmp.Compare(a.at, b.at) })
	return plan
}

func randDur(rng *rand.Rand, max time.Duration) time.Duration {
	return time.Duration(rng.Int64N(int64(max)))
}

// runChaos carries out the plan: each action once the appender has
// appended enough events.
func (h *harness) runChaos(ctx context.Context, plan []action, sup *supervisor, srv *natsrv.Server, js jetstream.JetStream) error {
	for i, a := range plan {
		h.action("chaos %d/%d planned: %s", i+1, len(plan), a)
	}
	for i, a := range plan {
		for h.appended.Load() < a.at {
			if err := sleep(ctx, 2*time.Millisecond); err != nil {
				return err
			}
		}
		if a.kind == restartNATS { // a dispatcher should be delivering when NATS goes
			if _, err := sup.awaitDelivering(ctx.Done()); err != nil {
				return fmt.Errorf("chaos %d/%d: wait for a delivering dispatcher: %w", i+1, len(plan), err)
			}
		}
		if err := h.burst(ctx); err != nil {
			return err
		}
		switch a.kind {
		case killDispatcher:
			req := killRequest{whenReady: !a.early, jitter: a.jitter, restartDelay: a.restart}
			if err := h.kill(ctx, sup, js, req, fmt.Sprintf("chaos %d/%d", i+1, len(plan))); err != nil {
				return err
			}
		case restartNATS:
			if err := sleep(ctx, a.jitter); err != nil {
				return err
			}
			h.action("chaos %d/%d: NATS down for %s (the de-duplication window is %s), %d events appended",
				i+1, len(plan), a.outage, dedupeWindow, h.appended.Load())
			h.natsDown()
			srv.Shutdown()
			began := time.Now()
			if a.killMid {
				if err := sleep(ctx, a.outage/2); err != nil {
					return err
				}
				if err := h.kill(ctx, sup, nil, killRequest{}, "while NATS is down"); err != nil {
					return err
				}
			}
			if err := sleep(ctx, a.outage-time.Since(began)); err != nil {
				return err
			}
			if err := srv.Restart(); err != nil {
				return fmt.Errorf("restart NATS: %w", err)
			}
			h.natsUp()
			h.action("NATS up again after %s", time.Since(began).Round(time.Millisecond))
		}
	}
	return nil
}

// kill kills the dispatcher and reports what the stream held afterwards
// (js nil: NATS is down, do not ask).
func (h *harness) kill(ctx context.Context, sup *supervisor, js jetstream.JetStream, req killRequest, why string) error {
	p, err := sup.kill(req, ctx.Done())
	appended := h.appended.Load()
	if err != nil {
		return fmt.Errorf("kill the dispatcher (%s): %w", why, err)
	}
	held := "unknown (NATS is down)"
	if js != nil {
		if n, err := streamMsgs(ctx, js); err == nil {
			held = strconv.FormatUint(n, 10)
			if n < appended {
				h.killsBehind.Add(1)
			}
		}
	}
	h.action("%s: SIGKILL %s, %s alive, %s; %d events appended, the stream holds %s; next start in %s",
		why, p, p.exited.Sub(p.started).Round(time.Millisecond), p.delivering(), appended, held, req.restartDelay.Round(time.Millisecond))
	return nil
}

// appendEvents appends cfg.events events in batches of random size at
// random moments, spread over about cfg.duration, through its own
// connection to the log, as an application would. Between batches it
// answers burst requests (see burst) with a batch several times the usual
// size; actions is how many to expect.
func (h *harness) appendEvents(ctx context.Context, l *sqlite.Log, cfg config, actions int) error {
	defer close(h.appendDone)
	rng := rand.New(rand.NewPCG(cfg.seed, 1))
	burstRng := rand.New(rand.NewPCG(cfg.seed, 3)) // bursts come when asked: their own stream keeps the batches reproducible
	avg := min(max(cfg.events/100, 1), 500)        // mean batch size: about 100 batches
	// Mean burst: five batches, but all bursts together about 40% of the events at most.
	burstAvg := max(min(5*avg, cfg.events*2/5/uint64(max(actions, 1))), 2)
	pause := time.Duration(int64(cfg.duration) / int64(cfg.events/avg))
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for next := uint64(1); next <= cfg.events; {
		var size uint64
		var reply chan struct{}
		select {
		case <-timer.C:
			size = 1 + rng.Uint64N(2*avg)
		case reply = <-h.bursts:
			size = burstAvg/2 + burstRng.Uint64N(burstAvg)
		case <-ctx.Done():
			return ctx.Err()
		}
		size = min(size, cfg.events-next+1)
		err := h.appendBatch(ctx, l, next, size)
		if reply != nil {
			close(reply)
		}
		if err != nil {
			return err
		}
		next += size
		h.appended.Store(next - 1)
		if reply == nil {
			// On time: event k is due k/N of the way through cfg.duration,
			// give or take half a pause, so bursts are followed by longer
			// pauses.
			due := start.Add(time.Duration(float64(cfg.duration) * float64(next-1) / float64(cfg.events)))
			timer.Reset(max(time.Until(due)+randDur(rng, pause)-pause/2, 0))
		}
	}
	return nil
}

// appendBatch appends events first..first+size-1, checking that the log
// gives them those sequence numbers.
func (h *harness) appendBatch(ctx context.Context, l *sqlite.Log, first, size uint64) error {
	events := make([]eventlog.Event, size)
	for i := range events {
		events[i] = eventFor(first + uint64(i))
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	seqs, err := l.Append(ctx, events...)
	if err != nil {
		return fmt.Errorf("append events %d..%d: %w", first, first+size-1, err)
	}
	if len(seqs) != int(size) || seqs[0] != first || seqs[len(seqs)-1] != first+size-1 {
		return fmt.Errorf("the log assigned %v to events %d..%d: is something else appending?", seqs, first, first+size-1)
	}
	return nil
}

// burst asks the appender for a burst of events and waits until it is
// committed, so that the action that follows finds the dispatcher busy
// publishing. Once every event is appended there is no burst.
func (h *harness) burst(ctx context.Context) error {
	reply := make(chan struct{})
	select {
	case h.bursts <- reply:
	case <-h.appendDone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-reply:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// eventTypes are cycled through by eventFor.
var eventTypes = []string{"order.created", "order.paid", "order.shipped"}

// eventFor is event seq as the test appends it; checkContents expects it back.
func eventFor(seq uint64) eventlog.Event {
	return eventlog.Event{
		Type:     eventTypes[seq%uint64(len(eventTypes))],
		Payload:  fmt.Appendf(nil, `{"n":%d,"note":"crash test event"}`, seq),
		Metadata: map[string]string{"Crash-N": strconv.FormatUint(seq, 10)},
	}
}

// checkContents reads the stream in order and compares message i with
// event i: subject, payload, metadata and Nats-Msg-Id. It returns how many
// differ and the first difference.
func checkContents(ctx context.Context, js jetstream.JetStream, n uint64) (int, string, error) {
	str, err := js.Stream(ctx, streamName)
	if err != nil {
		return 0, "", err
	}
	cons, err := str.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return 0, "", err
	}
	bad, first := 0, ""
	for i := uint64(1); i <= n; {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return bad, first, fmt.Errorf("read message %d: %w", i, err)
		}
		for m := range batch.Messages() {
			if diff := compare(i, m.Subject(), m.Data(), m.Headers()); diff != "" {
				bad++
				if first == "" {
					first = fmt.Sprintf("message %d: %s", i, diff)
				}
			}
			i++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
			return bad, first, fmt.Errorf("read message %d: %w", i, err)
		}
		if ctx.Err() != nil {
			return bad, first, fmt.Errorf("read message %d: %w", i, ctx.Err())
		}
	}
	return bad, first, nil
}

func compare(i uint64, subject string, data []byte, hdr nats.Header) string {
	want := eventFor(i)
	switch {
	case hdr.Get(dispatcher.KeySeqNum) != strconv.FormatUint(i, 10):
		return fmt.Sprintf("%s %q, want %d", dispatcher.KeySeqNum, hdr.Get(dispatcher.KeySeqNum), i)
	case subject != subjPrefix+"."+want.Type:
		return fmt.Sprintf("subject %q, want %q", subject, subjPrefix+"."+want.Type)
	case !bytes.Equal(data, want.Payload):
		return fmt.Sprintf("payload %q, want %q", data, want.Payload)
	case hdr.Get("Crash-N") != want.Metadata["Crash-N"]:
		return fmt.Sprintf("metadata Crash-N %q, want %q", hdr.Get("Crash-N"), want.Metadata["Crash-N"])
	case hdr.Get(nats.MsgIdHdr) != dispatcher.MsgID(dispatcherID, i):
		return fmt.Sprintf("%s %q, want %q", nats.MsgIdHdr, hdr.Get(nats.MsgIdHdr), dispatcher.MsgID(dispatcherID, i))
	}
	return ""
}

// streamMsgs is how many messages the stream holds.
func streamMsgs(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	str, err := js.Stream(ctx, streamName)
	if err != nil {
		return 0, err
	}
	return str.CachedInfo().State.Msgs, nil
}

// waitFor polls cond every 50ms until it holds, for at most budget. It
// gives up at once when the harness has seen a problem. The error names
// what was awaited and cond's last account of where things stand.
func (h *harness) waitFor(budget time.Duration, what string, cond func() (bool, string)) error {
	deadline := time.Now().Add(budget)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %s for %s: %s", budget, what, state)
		}
		select {
		case <-tick.C:
		case <-h.failed:
			return fmt.Errorf("while waiting for %s (%s): %s", what, state, strings.Join(h.problemList(), "; "))
		}
	}
}

// waitResult waits for a goroutine's result, for at most budget, or until
// the harness sees a problem.
func (h *harness) waitResult(result <-chan error, budget time.Duration, what string) error {
	select {
	case err := <-result:
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	case <-time.After(budget):
		return fmt.Errorf("%s did not finish within %s (%d events appended; last dispatcher status: %s)", what, budget, h.appended.Load(), h.status())
	case <-h.failed:
		return fmt.Errorf("during %s: %s", what, strings.Join(h.problemList(), "; "))
	}
}

// sleep waits d, or until ctx ends. Only the chaos schedule and the
// appender's pacing sleep: they wait on purpose, never for a condition.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// chaosFigures sums up the chaos so far. sup may be nil.
func (h *harness) chaosFigures(sup *supervisor) string {
	var kills, procs, downExits int64
	if sup != nil {
		kills, procs, downExits = sup.killed.Load(), sup.started.Load(), sup.downExits.Load()
	}
	outages := h.outageList()
	return fmt.Sprintf("%d kills (%d with the stream behind the log), %d NATS restarts (%s), %d dispatcher processes, "+
		"%d exits while NATS was down; %d sessions resumed after the stream's newest message, %d events ahead of their checkpoint",
		kills, h.killsBehind.Load(), len(outages), outageSummary(outages), procs, downExits,
		h.aheadSessions.Load(), h.aheadEvents.Load())
}

func outageSummary(os []outage) string {
	var parts []string
	for _, o := range os {
		if o.up.IsZero() {
			parts = append(parts, "down until the end")
			continue
		}
		parts = append(parts, "down "+o.up.Sub(o.down).Round(time.Millisecond).String())
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
