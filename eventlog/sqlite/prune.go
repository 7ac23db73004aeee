package sqlite

import (
	"context"
	"fmt"

	"github.com/seqrelay/seqrelay/eventlog"
)

// Prune deletes the events at or below the lowest checkpoint recorded (the
// slowest dispatcher's) and returns how many it deleted. With no checkpoint
// recorded it deletes nothing. It keeps the newest event, so that Head stays
// the highest sequence number handed out; sequence numbers are never reused.
func (l *Log) Prune(ctx context.Context) (deleted int64, err error) {
	if l.closed.Load() {
		return 0, eventlog.ErrClosed
	}
	res, err := l.db.ExecContext(ctx, `DELETE FROM events
		WHERE seq <= (SELECT min(seq) FROM checkpoints)
		AND seq < (SELECT max(seq) FROM events)`)
	if err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	return n, nil
}
