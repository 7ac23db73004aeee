package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/seqrelay/seqrelay/eventlog"
)

// Relay is the delivery engine both runtimes run. Over one Session it reads
// events after the current position, turns each into a message, publishes
// them in sequence order with at most MaxInFlight unacknowledged, and folds
// acknowledgements into a Progress. It detects stalls and poison events. It
// does not retry: the caller (the Dispatcher's recovery loop, or Temporal's
// retry policy) begins a new session after a failure.
type Relay struct {
	id      string
	reader  EventReader
	creator MessageCreator
	cfg     Config
	o       options

	// rejected holds events the target refused for what they are: they
	// meet the poison policy when next read.
	rejected map[uint64]*rejection
	// conflicted is set when a session ended because the stream changed
	// under it; the next session checks who changed it.
	conflicted bool
	// sent is the highest event sent in this Relay's finished sessions: a
	// duplicate acknowledgement above it was stored by another writer.
	sent uint64
}

// rejection is an event the target refused, and how often: first as itself,
// then as a dead letter with its payload, then without.
type rejection struct {
	cause error
	times int
}

// NewRelay returns a Relay that publishes the events of reader as dispatcher
// id. cfg must be valid; zero fields take defaults.
func NewRelay(id string, reader EventReader, creator MessageCreator, cfg Config, opts ...Option) (*Relay, error) {
	if err := eventlog.ValidateReaderID(id); err != nil {
		return nil, fmt.Errorf("dispatcher ID: %w", err)
	}
	switch {
	case reader == nil:
		return nil, fmt.Errorf("%w: the event reader (watcher) is nil", ErrNilDependency)
	case creator == nil:
		return nil, fmt.Errorf("%w: the message creator is nil", ErrNilDependency)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	return &Relay{id: id, reader: reader, creator: creator, cfg: cfg.WithDefaults(), o: o, rejected: map[uint64]*rejection{}}, nil
}

// Deliver begins a session on pub and runs it (see Run). When the target
// refuses an event for what it is (ErrRejected), Deliver rewinds and begins
// a new session at once, in which that event meets the poison policy. Any
// other failure is returned, with p rewound to the last acknowledged event:
// retrying, with backoff, is the caller's job. A Relay is used by one
// goroutine at a time.
func (r *Relay) Deliver(ctx context.Context, pub Publisher, p *Progress, stop <-chan struct{}, ro RunOptions) error {
	for retriedConflict := false; ; {
		err := r.deliverOnce(ctx, pub, p, stop, ro)
		if errors.Is(err, ErrConflict) {
			// Another writer, or a stale message of our own? A new
			// session looks at the stream's newest message to tell.
			r.conflicted = true
			p.rewind()
			if !retriedConflict {
				retriedConflict = true
				continue
			}
			return err
		}
		var perr *PublishError
		if errors.As(err, &perr) && errors.Is(perr, ErrRejected) && perr.Seq > p.State().LastAckedSeqNum {
			rej := r.rejected[perr.Seq]
			if rej == nil {
				rej = &rejection{cause: perr.Err}
				r.rejected[perr.Seq] = rej
			}
			rej.times++
			p.rewind()
			continue
		}
		if err != nil {
			p.rewind()
		}
		return err
	}
}

func (r *Relay) deliverOnce(ctx context.Context, pub Publisher, p *Progress, stop <-chan struct{}, ro RunOptions) error {
	bctx, cancel := context.WithTimeout(ctx, r.cfg.SeekTimeout)
	go func() { // stop need not wait for a slow Begin
		select {
		case <-stop:
			cancel()
		case <-bctx.Done():
		}
	}()
	sess, err := pub.Begin(bctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		select {
		case <-stop:
			return nil
		default:
		}
		return opError("begin", err)
	}
	defer sess.Close()
	return r.Run(ctx, sess, p, stop, ro)
}

// RunOptions bound one Run. The zero value runs until stopped.
type RunOptions struct {
	// MaxEvents stops reading after this many events (0: no limit).
	MaxEvents int
	// MaxDuration stops reading after this long (0: no limit).
	MaxDuration time.Duration
	// IdleReturn returns once the log had no new event for this long and
	// nothing is pending (0: wait for events until stopped).
	IdleReturn time.Duration
	// CaughtUpReturn, when set, returns as soon as the run has delivered
	// something, has run at least this long, and has caught up with the
	// log: its caller learns of progress without waiting for IdleReturn.
	CaughtUpReturn time.Duration
	// Heartbeat, when set, is called at every stall check that finds none,
	// with the current State: proof of life for a supervisor.
	Heartbeat func(State)
}

// Run delivers events over sess, resuming after p's position reconciled
// with what the target already holds (sess.Tail). It stops reading when ctx
// is done (returning ctx's error), when stop is closed or a RunOptions limit
// is reached (returning nil once every sent event is acknowledged), or on a
// failure, which it returns: a *PublishError, ErrStalled, a *PoisonError
// under PoisonStop, or a read error. p is updated as acks arrive.
func (r *Relay) Run(ctx context.Context, sess Session, p *Progress, stop <-chan struct{}, ro RunOptions) error {
	if err := r.reconcile(sess.Tail(), p); err != nil {
		return err
	}
	run := &run{
		Relay:      r,
		sentBefore: r.sent,
		ctx:        ctx,
		sess:       sess,
		p:          p,
		acks:       sess.Acks(),
		inflight:   newRing(r.o.maxInFlight),
		after:      p.State().LastObservedSeqNum,
		stop:       stop,
		ro:         ro,
		started:    time.Now(),
	}
	defer func() { r.sent = max(r.sent, run.sentMax) }()
	return run.loop()
}

// reconcile moves p past what the target already holds.
func (r *Relay) reconcile(tail Tail, p *Progress) error {
	if !tail.Known {
		p.began(0)
		return nil
	}
	if tail.MsgID != "" {
		if owner, _, ok := ParseMsgID(tail.MsgID); !ok || owner != r.id {
			return fmt.Errorf("%w: its newest message has Nats-Msg-Id %q, not one of dispatcher %q: give each dispatcher a stream of its own", ErrForeignTarget, tail.MsgID, r.id)
		}
	}
	if r.conflicted {
		r.conflicted = false
		if tail.Writer != "" && tail.Writer != r.o.writer {
			return opError("publish", fmt.Errorf("%w: dispatcher %q (writer %s) published event %d to the stream while this one (writer %s) was delivering: "+
				"two dispatchers with one ID run on one log and stream; stop one of them (in Temporal, one workflow ID per dispatcher gives this for free)",
				ErrFenced, r.id, tail.Writer, tail.Seq, r.o.writer))
		}
	}
	before := p.State()
	if tail.Seq < before.LastCheckpoint {
		r.o.logger.Warn("target holds less than the checkpoint says was delivered; events up to the checkpoint are not sent again",
			"dispatcher", r.id, "target_last_seq", tail.Seq, "checkpoint", before.LastCheckpoint)
	}
	p.began(tail.Seq)
	if tail.Seq > before.LastObservedSeqNum {
		r.o.logger.Info("target is ahead of the checkpoint: resuming after its newest event",
			"dispatcher", r.id, "target_last_seq", tail.Seq, "position", before.LastObservedSeqNum)
	}
	return nil
}

type run struct {
	*Relay
	sentBefore uint64 // r.sent when the run began
	sentMax    uint64 // highest event sent in this run
	ctx        context.Context
	sess       Session
	p          *Progress
	acks       <-chan Ack
	inflight   *ring
	batch      []eventlog.Event
	after      uint64 // last event observed
	observed   int
	stop       <-chan struct{}
	stopping   bool
	halt       error // returned once drained, when stopping for a poison event or a conflict
	conflict   bool  // draining after the stream changed under this session
	ro         RunOptions
	started    time.Time
	idle       time.Time // when the log was last found empty, zero if not
}

func (u *run) loop() error {
	rctx, cancel := context.WithCancel(u.ctx)
	batches := make(chan readResult, 2)
	readerDone := make(chan struct{})
	go u.readAhead(rctx, u.after, batches, readerDone)
	defer func() {
		cancel()
		<-readerDone
	}()

	stall := time.NewTicker(u.cfg.StallCheckInterval)
	defer stall.Stop()

	for {
		if err := u.drainAcks(); err != nil {
			return err
		}
		if !u.stopping && u.limitReached() {
			u.stopping = true
		}
		var next <-chan readResult
		switch {
		case u.stopping:
			if u.inflight.len() == 0 {
				return u.halt
			}
		case u.inflight.full():
			// Back-pressure: wait for an ack below.
		case len(u.batch) > 0:
			if err := u.publishNext(); err != nil && err != errHalting {
				return err
			}
			continue
		default:
			if u.inflight.len() == 0 && !u.idle.IsZero() {
				if u.ro.IdleReturn > 0 && time.Since(u.idle) >= u.ro.IdleReturn {
					return nil
				}
				if u.ro.CaughtUpReturn > 0 && u.observed > 0 && time.Since(u.started) >= u.ro.CaughtUpReturn {
					return nil
				}
			}
			next = batches
		}
		select {
		case b := <-next:
			if b.err != nil {
				return b.err
			}
			u.take(b.events)
		case a := <-u.acks:
			if err := u.onAck(a); err != nil {
				return err
			}
		case <-stall.C:
			if err := u.checkStall(); err != nil {
				return err
			}
		case <-u.stop:
			u.stopping, u.stop = true, nil
		case <-u.ctx.Done():
			return u.ctx.Err()
		}
	}
}

func (u *run) limitReached() bool {
	if u.ro.MaxEvents > 0 && u.observed >= u.ro.MaxEvents {
		return true
	}
	return u.ro.MaxDuration > 0 && time.Since(u.started) >= u.ro.MaxDuration
}

// take makes events the current batch; none means the log had no more.
func (u *run) take(events []eventlog.Event) {
	if len(events) == 0 {
		if u.idle.IsZero() {
			u.idle = time.Now()
		}
		return
	}
	u.idle = time.Time{}
	if u.ro.MaxEvents > 0 {
		events = events[:min(len(events), u.ro.MaxEvents-u.observed)]
	}
	u.batch = events
}

// readResult is one read of the log: events, none (the log is idle), or an error.
type readResult struct {
	events []eventlog.Event
	err    error
}

// readAhead reads the log from after on, a batch ahead of publishing, so
// that reading and publishing overlap. When the log has nothing new it
// sends an empty result and waits for an append, or ProcessInterval.
func (u *run) readAhead(ctx context.Context, after uint64, out chan<- readResult, done chan<- struct{}) {
	defer close(done)
	poll := time.NewTimer(u.cfg.ProcessInterval)
	defer poll.Stop()
	send := func(r readResult) bool {
		select {
		case out <- r:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		wake := u.reader.Appended()
		rctx, cancel := context.WithTimeout(ctx, u.cfg.SeekTimeout)
		evs, err := u.reader.Read(rctx, after, u.o.batchSize)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				send(readResult{err: opError("read", fmt.Errorf("events after %d: %w", after, err))})
			}
			return
		}
		n := len(evs)
		if n > 0 {
			after = evs[n-1].Seq // before sending: the batch is the publisher's then
		}
		if !send(readResult{events: evs}) {
			return
		}
		if n > 0 {
			continue
		}
		poll.Reset(u.cfg.ProcessInterval)
		select {
		case <-wake:
		case <-poll.C:
		case <-ctx.Done():
			return
		}
	}
}

func (u *run) publishNext() error {
	e := u.batch[0]
	u.batch[0] = eventlog.Event{} // let the payload go once sent
	u.batch = u.batch[1:]
	if e.Seq <= u.after {
		return opError("read", fmt.Errorf("event log returned event %d after %d: sequence numbers must increase", e.Seq, u.after))
	}
	msg, err := u.creator.CreateMessage(e)
	rej := u.rejected[e.Seq]
	if rej != nil {
		msg, err = nil, rej.cause
	}
	if err == nil && msg == nil {
		u.after = e.Seq
		u.observed++
		u.p.observe(e.Seq, false)
		return nil
	}
	if err == nil {
		stamp(msg, u.id, u.o.writer, e)
		err = u.sess.Publish(e.Seq, msg)
		if err != nil && !errors.Is(err, nats.ErrMaxPayload) {
			return opError("publish", &PublishError{Seq: e.Seq, Err: err})
		}
	}
	if err != nil {
		if err := u.poison(e, err, rej); err != nil {
			return err
		}
	}
	u.inflight.push(e.Seq, time.Now())
	u.sentMax = e.Seq
	u.after = e.Seq
	u.observed++
	u.p.observe(e.Seq, true)
	return nil
}

// poison applies the poison policy to e, which failed with cause. Under
// PoisonDeadLetter it publishes the dead letter in e's place: with the
// payload, or without it when that was too large (synchronously, or as
// rej, an earlier rejection, says). Under PoisonStop, or when even the dead
// letter is refused, it stops reading, lets the messages in flight be
// acknowledged, and then fails with a *PoisonError.
func (u *run) poison(e eventlog.Event, cause error, rej *rejection) error {
	perr := &PoisonError{Seq: e.Seq, Type: e.Type, Err: cause}
	payloads := []bool{true, false}
	if rej != nil {
		payloads = payloads[min(rej.times-1, 2):]
	}
	if u.o.poison != PoisonDeadLetter || len(payloads) == 0 {
		return u.haltAfterDrain(perr)
	}
	dl := u.o.deadLetterMessage(e, cause)
	u.o.logger.Error("dead-lettering poison event", "dispatcher", u.id, "seq", e.Seq, "type", e.Type, "error", cause, "subject", dl.subject)
	for _, withPayload := range payloads {
		msg := dl.message(withPayload)
		stamp(msg, u.id, u.o.writer, e)
		err := u.sess.Publish(e.Seq, msg)
		if err == nil {
			u.p.deadLettered()
			return nil
		}
		if !errors.Is(err, nats.ErrMaxPayload) {
			return opError("publish", &PublishError{Seq: e.Seq, Err: fmt.Errorf("dead letter: %w", err)})
		}
	}
	return u.haltAfterDrain(perr)
}

// haltAfterDrain stops reading; the loop returns err once every message in
// flight is acknowledged, so that the checkpoint reaches the event before.
func (u *run) haltAfterDrain(err *PoisonError) error {
	u.stopping, u.halt = true, opError("publish", err)
	u.batch = nil
	return errHalting
}

// errHalting tells publishNext's caller that the run is draining to a halt.
var errHalting = errors.New("halting")

func (u *run) drainAcks() error {
	for {
		select {
		case a := <-u.acks:
			if err := u.onAck(a); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

func (u *run) onAck(a Ack) error {
	if a.Err != nil && a.Seq == 0 {
		return opError("publish", a.Err) // the session failed as a whole
	}
	head, _, ok := u.inflight.front()
	if !ok || head != a.Seq {
		return opError("publish", fmt.Errorf("%w: got the ack of event %d while waiting for %d", ErrOutOfOrder, a.Seq, head))
	}
	if u.conflict {
		// Draining after a conflict: a message stored now is still ours
		// (the chain proves every event before it is in the stream).
		u.inflight.pop()
		if a.Err == nil && !a.Duplicate {
			u.p.ack(a)
		}
		return nil
	}
	var conflict error
	switch {
	case errors.Is(a.Err, ErrConflict):
		conflict = a.Err
	case a.Err != nil:
		return opError("publish", &PublishError{Seq: a.Seq, Err: a.Err})
	case a.Duplicate && a.Seq > u.sentBefore:
		// Not a re-send of ours: someone else stored this event.
		conflict = fmt.Errorf("%w: the stream already held event %d, and not from this writer", ErrConflict, a.Seq)
	}
	if conflict != nil {
		// Stop sending, and let every message in flight land or fail
		// before the next session looks at who wrote the stream's newest
		// message: then no message of ours lands after that look.
		u.conflict, u.stopping, u.batch = true, true, nil
		u.halt = opError("publish", &PublishError{Seq: a.Seq, Err: conflict})
		u.inflight.pop()
		return nil
	}
	u.inflight.pop()
	u.p.ack(a)
	if len(u.rejected) > 0 {
		delete(u.rejected, a.Seq)
	}
	return nil
}

func (u *run) checkStall() error {
	if seq, sent, ok := u.inflight.front(); ok {
		if age := time.Since(sent); age >= u.cfg.StallTimeout {
			return opError("publish", fmt.Errorf("%w: event %d unacknowledged for %s (StallTimeout %s)",
				ErrStalled, seq, age.Round(time.Millisecond), u.cfg.StallTimeout))
		}
	}
	if u.ro.Heartbeat != nil {
		u.ro.Heartbeat(u.p.State())
	}
	return nil
}
