package dispatcher

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/eventlog"
)

func TestMsgIDRoundTrip(t *testing.T) {
	id, seq, ok := ParseMsgID(MsgID("orders:eu", 42))
	require.True(t, ok)
	assert.Equal(t, "orders:eu", id)
	assert.EqualValues(t, 42, seq)
	_, _, ok = ParseMsgID("no-seq")
	assert.False(t, ok)
	_, _, ok = ParseMsgID("x:y")
	assert.False(t, ok)
}

func TestSubjectCreator(t *testing.T) {
	c, err := NewSubjectCreator("app.events")
	require.NoError(t, err)
	msg, err := c.CreateMessage(eventlog.Event{Seq: 3, Type: "order.created", Payload: []byte("p"), Metadata: map[string]string{"tenant": "a"}})
	require.NoError(t, err)
	assert.Equal(t, "app.events.order.created", msg.Subject)
	assert.Equal(t, []byte("p"), msg.Data)
	assert.Equal(t, "a", msg.Header.Get("tenant"))
	assert.Equal(t, "order.created", msg.Header.Get(KeyEventType))

	stamp(msg, "orders", "w1", eventlog.Event{Seq: 3})
	assert.Equal(t, "3", msg.Header.Get(KeySeqNum))
	assert.Equal(t, "orders:3", msg.Header.Get(nats.MsgIdHdr))
	assert.Equal(t, "w1", msg.Header.Get(KeyWriter))

	for typ, problem := range map[string]string{
		"order created": "whitespace",
		"order..x":      "empty token",
		"order.*":       "wildcard",
		"order.>":       "wildcard",
		".order":        "empty token",
	} {
		_, err := c.CreateMessage(eventlog.Event{Type: typ})
		require.Error(t, err, typ)
		assert.Contains(t, err.Error(), problem, typ)
	}
	for key, problem := range map[string]string{
		"a:b":         "no colons",
		"Nats-Msg-Id": "reserved",
		KeySeqNum:     "reserved",
	} {
		_, err := c.CreateMessage(eventlog.Event{Type: "t", Metadata: map[string]string{key: "v"}})
		require.Error(t, err, key)
		assert.Contains(t, err.Error(), problem, key)
	}
	_, err = c.CreateMessage(eventlog.Event{Type: "t", Metadata: map[string]string{"k": "a\nb"}})
	assert.ErrorContains(t, err, "line break")

	_, err = NewSubjectCreator("bad prefix")
	assert.ErrorContains(t, err, "subject prefix")
}

func TestParsePoisonPolicy(t *testing.T) {
	for in, want := range map[string]PoisonPolicy{"": PoisonStop, "stop": PoisonStop, "dead-letter": PoisonDeadLetter} {
		got, err := ParsePoisonPolicy(in)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	_, err := ParsePoisonPolicy("drop")
	assert.ErrorContains(t, err, `unknown poison policy "drop"`)
}
