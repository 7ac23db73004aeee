package sqlite_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/eventlog"
)

// TestPrune: nothing without checkpoints; never past the slowest one; the
// newest event is kept so that Head and numbering stay right.
func TestPrune(t *testing.T) {
	ctx := context.Background()
	l := openNew(t)
	defer l.Close()
	_, err := l.Append(ctx, make10()...)
	require.NoError(t, err)

	for _, step := range []struct {
		name    string
		cps     map[string]uint64
		deleted int64
		first   uint64
	}{
		{"no checkpoint", nil, 0, 1},
		{"slowest at 3", map[string]uint64{"fast": 7, "slow": 3}, 3, 4},
		{"again", nil, 0, 4},
		{"slowest now fast at 7", map[string]uint64{"slow": 9}, 4, 8},
		{"everything: the newest stays", map[string]uint64{"fast": 10, "slow": 10}, 2, 10},
	} {
		for id, seq := range step.cps {
			require.NoError(t, l.Checkpoint(ctx, id, seq))
		}
		n, err := l.Prune(ctx)
		require.NoError(t, err, step.name)
		assert.Equal(t, step.deleted, n, step.name)
		evs, err := l.Read(ctx, 0, 100)
		require.NoError(t, err)
		require.NotEmpty(t, evs, step.name)
		assert.Equal(t, step.first, evs[0].Seq, step.name)
	}
	head, err := l.Head(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 10, head)
	seqs, err := l.Append(ctx, eventlog.Event{Type: "next"})
	require.NoError(t, err)
	assert.Equal(t, []uint64{11}, seqs)
}

func make10() []eventlog.Event {
	evs := make([]eventlog.Event, 10)
	for i := range evs {
		evs[i] = eventlog.Event{Type: "t"}
	}
	return evs
}
