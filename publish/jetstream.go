package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqrelay/seqrelay/dispatcher"
)

// Headers JetStream checks before storing a message.
const (
	hdrExpectedLastMsgID = "Nats-Expected-Last-Msg-Id"
	hdrExpectedLastSeq   = "Nats-Expected-Last-Sequence"
	hdrStatus            = "Status"
)

// JetStream publishes to one JetStream stream. Every session first finds
// the stream's newest message (its KeySeqNum and Nats-Msg-Id), so that
// delivery resumes after what the stream already holds, however long ago it
// was written. Each message then names its predecessor in
// Nats-Expected-Last-Msg-Id: the server stores it only if the stream's
// newest message is that predecessor. So the stream never holds a gap, a
// reordering or a duplicate, even when messages in flight are lost, and a
// second writer's publishes are refused (ErrConflict). The stream must be
// written by this dispatcher alone.
type JetStream struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	stream string
}

var _ dispatcher.Publisher = (*JetStream)(nil)

// NewJetStream returns a publisher to the named stream over nc.
func NewJetStream(nc *nats.Conn, stream string) (*JetStream, error) {
	if nc == nil {
		return nil, errors.New("publish: the NATS connection is nil")
	}
	if err := ValidateStreamName(stream); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	return &JetStream{nc: nc, js: js, stream: stream}, nil
}

// Begin implements dispatcher.Publisher: it finds the stream's newest
// message and opens a session that chains onto it.
func (p *JetStream) Begin(ctx context.Context) (dispatcher.Session, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if st := p.nc.Status(); st != nats.CONNECTED {
		return nil, fmt.Errorf("%w (connection is %s)", ErrNotConnected, st)
	}
	str, err := p.js.Stream(ctx, p.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("%w: %q: create it (seqrelay creates it unless --create-stream=false) or name an existing one", ErrStreamNotFound, p.stream)
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %q: %w", p.stream, err)
	}
	s := &jsSession{
		nc:    p.nc,
		inbox: nats.NewInbox() + ".",
		acks:  make(chan dispatcher.Ack, 1024),
		done:  make(chan struct{}),
	}
	if err := s.findTail(ctx, str); err != nil {
		return nil, err
	}
	s.sub, err = p.nc.Subscribe(s.inbox+"*", s.onReply)
	if err != nil {
		return nil, fmt.Errorf("subscribe to acknowledgements: %w", err)
	}
	if err := s.sub.SetPendingLimits(-1, -1); err != nil {
		s.sub.Unsubscribe()
		return nil, err
	}
	s.status = p.nc.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED)
	go s.watchConnection()
	// A flush makes the inbox subscription known to the server before the
	// first publish, and proves the connection works.
	if err := p.nc.FlushWithContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("%w: %w", ErrNotConnected, err)
	}
	return s, nil
}

type jsSession struct {
	nc     *nats.Conn
	inbox  string // ends with "."
	sub    *nats.Subscription
	status chan nats.Status
	acks   chan dispatcher.Ack
	done   chan struct{}
	once   sync.Once
	failed atomic.Bool

	tail dispatcher.Tail
	// The chain: the Nats-Msg-Id of the stream's newest message as this
	// session knows it, or, when that is unknown, its stream sequence.
	prevID  string
	prevSeq uint64
}

// findTail reads the stream's newest message.
func (s *jsSession) findTail(ctx context.Context, str jetstream.Stream) error {
	last := str.CachedInfo().State.LastSeq
	s.prevSeq = last
	s.tail = dispatcher.Tail{Known: true}
	if last == 0 {
		return nil
	}
	msg, err := str.GetMsg(ctx, last)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		// Purged or aged out: nothing to resume from; chain on the sequence.
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the newest message of stream %q: %w", str.CachedInfo().Config.Name, err)
	}
	id := msg.Header.Get(nats.MsgIdHdr)
	seq, perr := strconv.ParseUint(msg.Header.Get(dispatcher.KeySeqNum), 10, 64)
	if id == "" || perr != nil {
		return fmt.Errorf("%w: the newest message of stream %q (stream sequence %d, subject %q) has no %s and %s headers: it was not published by seqrelay; give seqrelay a stream of its own",
			dispatcher.ErrForeignTarget, str.CachedInfo().Config.Name, last, msg.Subject, dispatcher.KeySeqNum, nats.MsgIdHdr)
	}
	s.tail.Seq, s.tail.MsgID, s.prevID = seq, id, id
	s.tail.Writer = msg.Header.Get(dispatcher.KeyWriter)
	return nil
}

// Tail implements dispatcher.Session.
func (s *jsSession) Tail() dispatcher.Tail { return s.tail }

// Acks implements dispatcher.Session.
func (s *jsSession) Acks() <-chan dispatcher.Ack { return s.acks }

// Publish implements dispatcher.Session.
func (s *jsSession) Publish(seq uint64, msg *nats.Msg) error {
	select {
	case <-s.done:
		return ErrSessionClosed
	default:
	}
	id := msg.Header.Get(nats.MsgIdHdr)
	if id == "" {
		return fmt.Errorf("message of event %d has no %s header", seq, nats.MsgIdHdr)
	}
	if s.prevID != "" {
		msg.Header[hdrExpectedLastMsgID] = []string{s.prevID}
	} else {
		msg.Header[hdrExpectedLastSeq] = []string{strconv.FormatUint(s.prevSeq, 10)}
	}
	msg.Reply = s.inbox + strconv.FormatUint(seq, 10)
	if err := s.nc.PublishMsg(msg); err != nil {
		delete(msg.Header, hdrExpectedLastMsgID)
		delete(msg.Header, hdrExpectedLastSeq)
		return err
	}
	s.prevID = id
	return nil
}

// pubAck is the server's answer to a JetStream publish.
type pubAck struct {
	Error     *jetstream.APIError `json:"error,omitempty"`
	Stream    string              `json:"stream"`
	Sequence  uint64              `json:"seq"`
	Duplicate bool                `json:"duplicate,omitempty"`
}

func (s *jsSession) onReply(m *nats.Msg) {
	seq, err := strconv.ParseUint(strings.TrimPrefix(m.Subject, s.inbox), 10, 64)
	if err != nil {
		return // not ours
	}
	a := dispatcher.Ack{Seq: seq}
	if len(m.Data) == 0 && m.Header.Get(hdrStatus) == "503" {
		a.Err = fmt.Errorf("%w: no stream takes the message's subject (add it to the stream's subjects, or change the subject prefix)", dispatcher.ErrRejected)
	} else {
		var r pubAck
		if err := json.Unmarshal(m.Data, &r); err != nil {
			a.Err = fmt.Errorf("unreadable acknowledgement %q: %w", m.Data, err)
		} else if r.Error != nil {
			a.Err = classify(r.Error)
		} else {
			a.Duplicate = r.Duplicate
		}
	}
	s.send(a)
}

func classify(e *jetstream.APIError) error {
	switch e.ErrorCode {
	case 10070, jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant:
		return fmt.Errorf("%w: %w", ErrConflict, e)
	case jetstream.JSErrCodeStreamMessageExceedsMaximum:
		return fmt.Errorf("%w: %w", dispatcher.ErrRejected, e)
	}
	return e
}

func (s *jsSession) send(a dispatcher.Ack) {
	select {
	case s.acks <- a:
	case <-s.done:
	}
}

func (s *jsSession) watchConnection() {
	for {
		select {
		case st, ok := <-s.status:
			if !ok {
				return
			}
			if s.failed.CompareAndSwap(false, true) {
				s.send(dispatcher.Ack{Err: fmt.Errorf("%w (connection is %s)", ErrDisconnected, st)})
			}
		case <-s.done:
			return
		}
	}
}

// Close implements dispatcher.Session.
func (s *jsSession) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		s.nc.RemoveStatusListener(s.status)
		err = s.sub.Unsubscribe()
		if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
			err = nil
		}
	})
	return err
}

// withDefaultTimeout bounds ctx by 30s when it has no deadline of its own:
// Begin talks to the server, and a flush needs a deadline.
func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, 30*time.Second)
}
