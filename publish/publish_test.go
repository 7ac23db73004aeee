package publish_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/internal/natstest"
	"github.com/seqrelay/seqrelay/publish"
)

func setup(t *testing.T) (*nats.Conn, jetstream.JetStream, *publish.JetStream) {
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv.URL())
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, created, err := publish.EnsureStream(context.Background(), js, publish.StreamConfig{Name: "S", Subjects: []string{"s.>"}})
	require.NoError(t, err)
	require.True(t, created)
	_, created, err = publish.EnsureStream(context.Background(), js, publish.StreamConfig{Name: "S", Subjects: []string{"s.>"}})
	require.NoError(t, err)
	require.False(t, created, "an existing stream is left as it is")
	pub, err := publish.NewJetStream(nc, "S")
	require.NoError(t, err)
	return nc, js, pub
}

func msg(seq uint64, writer string) *nats.Msg {
	s := dispatcher.MsgID("d", seq)
	return &nats.Msg{Subject: "s.x", Data: []byte("x"), Header: nats.Header{
		dispatcher.KeySeqNum: {s[2:]}, nats.MsgIdHdr: {s}, dispatcher.KeyWriter: {writer},
	}}
}

func ack(t *testing.T, sess dispatcher.Session) dispatcher.Ack {
	t.Helper()
	select {
	case a := <-sess.Acks():
		return a
	case <-time.After(30 * time.Second):
		t.Fatal("no acknowledgement")
		return dispatcher.Ack{}
	}
}

func begin(t *testing.T, pub *publish.JetStream) dispatcher.Session {
	t.Helper()
	sess, err := pub.Begin(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { sess.Close() })
	return sess
}

func TestSessionsChainAndFindTheTail(t *testing.T) {
	_, _, pub := setup(t)
	s1 := begin(t, pub)
	assert.Equal(t, dispatcher.Tail{Known: true}, s1.Tail(), "empty stream")
	for seq := uint64(1); seq <= 3; seq++ {
		require.NoError(t, s1.Publish(seq, msg(seq, "w1")))
	}
	for seq := uint64(1); seq <= 3; seq++ {
		assert.Equal(t, dispatcher.Ack{Seq: seq}, ack(t, s1))
	}

	s2 := begin(t, pub)
	assert.Equal(t, dispatcher.Tail{Known: true, Seq: 3, MsgID: "d:3", Writer: "w1"}, s2.Tail())
	require.NoError(t, s2.Publish(4, msg(4, "w2")))
	assert.Equal(t, dispatcher.Ack{Seq: 4}, ack(t, s2))

	// s1 still believes event 3 is the newest: the stream refuses its 5.
	require.NoError(t, s1.Publish(5, msg(5, "w1")))
	a := ack(t, s1)
	assert.EqualValues(t, 5, a.Seq)
	assert.ErrorIs(t, a.Err, dispatcher.ErrConflict)

	// A re-send of a stored event within the window is a duplicate.
	s3 := begin(t, pub)
	require.NoError(t, s3.Publish(4, msg(4, "w2")))
	assert.Equal(t, dispatcher.Ack{Seq: 4, Duplicate: true}, ack(t, s3))
}

func TestForeignTail(t *testing.T) {
	_, js, pub := setup(t)
	_, err := js.Publish(context.Background(), "s.other", []byte("not ours"))
	require.NoError(t, err)
	_, err = pub.Begin(context.Background())
	require.ErrorIs(t, err, dispatcher.ErrForeignTarget)
	assert.Contains(t, err.Error(), "give seqrelay a stream of its own")
}

// A subject no stream takes is a rejection of that message.
func TestSubjectOutsideTheStreamIsRejected(t *testing.T) {
	_, _, pub := setup(t)
	sess := begin(t, pub)
	m := msg(1, "w")
	m.Subject = "nowhere.x"
	require.NoError(t, sess.Publish(1, m))
	a := ack(t, sess)
	assert.ErrorIs(t, a.Err, dispatcher.ErrRejected)
	assert.Contains(t, a.Err.Error(), "no stream takes the message's subject")
}

func TestMessageWithoutMsgIDIsRefused(t *testing.T) {
	_, _, pub := setup(t)
	sess := begin(t, pub)
	err := sess.Publish(1, &nats.Msg{Subject: "s.x", Header: nats.Header{}})
	assert.ErrorContains(t, err, "has no Nats-Msg-Id header")
	require.NoError(t, sess.Close())
	assert.ErrorIs(t, sess.Publish(1, msg(1, "w")), publish.ErrSessionClosed)
}

func TestCoreSessionAcknowledgesByFlush(t *testing.T) {
	nc, _, _ := setup(t)
	got := make(chan *nats.Msg, 10)
	sub, err := nc.ChanSubscribe("s.>", got)
	require.NoError(t, err)
	defer sub.Unsubscribe()
	core, err := publish.NewCore(nc, time.Second)
	require.NoError(t, err)
	sess, err := core.Begin(context.Background())
	require.NoError(t, err)
	defer sess.Close()
	assert.False(t, sess.Tail().Known, "core NATS cannot say what it holds")
	for seq := uint64(1); seq <= 3; seq++ {
		require.NoError(t, sess.Publish(seq, msg(seq, "w")))
	}
	for seq := uint64(1); seq <= 3; seq++ {
		assert.Equal(t, dispatcher.Ack{Seq: seq}, ack(t, sess))
		m := <-got
		assert.Equal(t, dispatcher.MsgID("d", seq), m.Header.Get(nats.MsgIdHdr))
	}
}
