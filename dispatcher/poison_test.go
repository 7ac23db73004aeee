package dispatcher_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/internal/dispatchertest"
	"github.com/seqrelay/seqrelay/internal/natsrv"
	"github.com/seqrelay/seqrelay/internal/natstest"
	"github.com/seqrelay/seqrelay/publish"
)

// failOn returns a creator that cannot make a message of event bad.
func failOn(t *testing.T, bad uint64) dispatcher.MessageCreator {
	base, err := dispatcher.NewSubjectCreator(publish.DefaultSubjectPrefix)
	require.NoError(t, err)
	return dispatcher.MessageCreatorFunc(func(e eventlog.Event) (*nats.Msg, error) {
		if e.Seq == bad {
			return nil, errors.New("schema v3 is not supported")
		}
		return base.CreateMessage(e)
	})
}

// TestPoisonStopHaltsAndResumesAfterTheFix: under the stop policy a poison
// event halts delivery with an error naming it; events before it are
// delivered and checkpointed; after the fix a new dispatcher resumes at
// exactly the poison event.
func TestPoisonStopHaltsAndResumesAfterTheFix(t *testing.T) {
	f := newFixture(t)
	d := f.newDispatcher(dispatchertest.Options{Creator: failOn(t, 3)})
	require.NoError(t, d.Start(ctx(t)))
	f.append(5)
	dispatchertest.WaitFor(t, "halt", func() bool { return d.Status().Halted })
	st := d.Status()
	assert.Contains(t, st.LastError, `event 3 (type "order.created") cannot be delivered: schema v3 is not supported`)
	assert.Contains(t, st.LastError, "delivery resumes at event 3")
	assert.EqualValues(t, 2, st.LastAckedSeqNum)
	require.NoError(t, d.Stop(ctx(t)))
	cp, err := f.log.LastCheckpoint(ctx(t), "orders")
	require.NoError(t, err)
	assert.EqualValues(t, 2, cp, "checkpoint stops right before the poison event")
	assert.Equal(t, []uint64{1, 2}, natstest.Seqs(f.Messages()))

	fixed := f.newDispatcher(dispatchertest.Options{})
	require.NoError(t, fixed.Start(ctx(t)))
	dispatchertest.WaitAcked(t, fixed, 5)
	assert.Equal(t, natstest.Range(1, 5), natstest.Seqs(f.Messages()))
}

// TestPoisonDeadLetter: the poison event goes to the dead-letter subject in
// its place in the sequence, and delivery carries on.
func TestPoisonDeadLetter(t *testing.T) {
	f := newFixture(t)
	d := f.newDispatcher(dispatchertest.Options{Creator: failOn(t, 3), Options: []dispatcher.Option{dispatcher.WithPoisonPolicy(dispatcher.PoisonDeadLetter)}})
	require.NoError(t, d.Start(ctx(t)))
	f.append(5)
	dispatchertest.WaitAcked(t, d, 5)
	msgs := f.Messages()
	require.Equal(t, natstest.Range(1, 5), natstest.Seqs(msgs))
	dl := msgs[2]
	assert.Equal(t, "seqrelay.deadletter.order.created", dl.Subject)
	assert.Equal(t, "schema v3 is not supported", dl.Header.Get(dispatcher.KeyDeadLetterError))
	assert.Equal(t, `{"n":2}`, string(dl.Data), "the raw payload travels with the dead letter")
	assert.Equal(t, "seqrelay.events.order.created", msgs[3].Subject)
	assert.EqualValues(t, 1, d.Status().DeadLettered)
	assert.False(t, d.Status().Halted)
}

// TestOversizedEvent: an event larger than the server's max payload is a
// poison event: halted under stop, dead-lettered without its payload under
// dead-letter.
func TestOversizedEvent(t *testing.T) {
	for _, policy := range []dispatcher.PoisonPolicy{dispatcher.PoisonStop, dispatcher.PoisonDeadLetter} {
		t.Run(string(policy), func(t *testing.T) {
			f := newFixtureWith(t, natsrv.Options{MaxPayload: 4096}, eventlog.NewMemory())
			d := f.newDispatcher(dispatchertest.Options{Options: []dispatcher.Option{dispatcher.WithPoisonPolicy(policy)}})
			require.NoError(t, d.Start(ctx(t)))
			_, err := f.log.Append(ctx(t),
				eventlog.Event{Type: "small", Payload: []byte("a")},
				eventlog.Event{Type: "big", Payload: bytes.Repeat([]byte("x"), 10000)},
				eventlog.Event{Type: "small", Payload: []byte("c")},
			)
			require.NoError(t, err)
			if policy == dispatcher.PoisonStop {
				dispatchertest.WaitFor(t, "halt", func() bool { return d.Status().Halted })
				assert.Contains(t, d.Status().LastError, "event 2")
				assert.Contains(t, d.Status().LastError, "maximum payload")
				assert.Equal(t, []uint64{1}, natstest.Seqs(f.Messages()))
				return
			}
			dispatchertest.WaitAcked(t, d, 3)
			msgs := f.Messages()
			require.Equal(t, []uint64{1, 2, 3}, natstest.Seqs(msgs))
			assert.Equal(t, "seqrelay.deadletter.big", msgs[1].Subject)
			assert.Equal(t, "10000", msgs[1].Header.Get(dispatcher.KeyPayloadDropped))
			assert.Empty(t, msgs[1].Data)
		})
	}
}

// TestRejectedByStreamLimit: the stream refuses a message over its
// MaxMsgSize after it was sent (an asynchronous rejection); messages sent
// after it are refused too by the chain. The dispatcher rewinds, dead-
// letters the rejected event and re-sends the rest, in order, once.
func TestRejectedByStreamLimit(t *testing.T) {
	f := newFixture(t)
	_, err := f.JS().UpdateStream(ctx(t), jetstream.StreamConfig{Name: stream, Subjects: publish.DefaultSubjects, MaxMsgSize: 2048})
	require.NoError(t, err)
	d := f.newDispatcher(dispatchertest.Options{Options: []dispatcher.Option{dispatcher.WithPoisonPolicy(dispatcher.PoisonDeadLetter)}})
	require.NoError(t, d.Start(ctx(t)))
	evs := []eventlog.Event{{Type: "a", Payload: []byte("1")}, {Type: "big", Payload: bytes.Repeat([]byte("x"), 3000)}}
	for range 20 {
		evs = append(evs, eventlog.Event{Type: "a", Payload: []byte("n")})
	}
	_, err = f.log.Append(ctx(t), evs...)
	require.NoError(t, err)
	dispatchertest.WaitAcked(t, d, 22)
	msgs := f.Messages()
	require.Equal(t, natstest.Range(1, 22), natstest.Seqs(msgs))
	assert.Equal(t, "seqrelay.deadletter.big", msgs[1].Subject)
	assert.Contains(t, msgs[1].Header.Get(dispatcher.KeyDeadLetterError), "message size exceeds maximum")
}
