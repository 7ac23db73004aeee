package postgres

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/seqrelay/seqrelay/eventlog"
)

// Reconnect delays of the listener: doubling from the first to the last.
const (
	listenRetryMin = 100 * time.Millisecond
	listenRetryMax = 5 * time.Second
)

// listener keeps one connection LISTENing on notifyChannel and wakes a
// Notifier on each notification for its schema. It reconnects after losing
// the connection, and wakes the Notifier then, since notifications sent
// while it was away are lost.
type listener struct {
	cfg    *pgx.ConnConfig
	schema string
	notify *eventlog.Notifier
	logger *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
}

// startListener connects and LISTENs before returning, so that every commit
// after Open returns wakes Appended; then it waits in the background.
func startListener(ctx context.Context, cfg *pgx.ConnConfig, schema string, n *eventlog.Notifier, logger *slog.Logger) (*listener, error) {
	l := &listener{cfg: cfg.Copy(), schema: schema, notify: n, logger: logger, done: make(chan struct{})}
	conn, err := l.connect(ctx)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go l.run(runCtx, conn)
	return l, nil
}

func (l *listener) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, l.cfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{notifyChannel}.Sanitize()); err != nil {
		closeConn(conn)
		return nil, err
	}
	return conn, nil
}

func (l *listener) run(ctx context.Context, conn *pgx.Conn) {
	defer close(l.done)
	for {
		err := l.wait(ctx, conn)
		closeConn(conn)
		if ctx.Err() != nil {
			return
		}
		l.logger.Warn("event log listener lost its connection; reconnecting (dispatchers poll meanwhile)", "error", err)
		if conn = l.reconnect(ctx); conn == nil {
			return
		}
		l.logger.Info("event log listener reconnected")
		l.notify.Notify()
	}
}

// wait forwards notifications until the connection fails or ctx ends.
func (l *listener) wait(ctx context.Context, conn *pgx.Conn) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Payload == l.schema {
			l.notify.Notify()
		}
	}
}

// reconnect retries with backoff until it listens again, or ctx ends (nil).
func (l *listener) reconnect(ctx context.Context) *pgx.Conn {
	delay := listenRetryMin
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		conn, err := l.connect(cctx)
		cancel()
		if err == nil {
			return conn
		}
		if ctx.Err() != nil {
			return nil
		}
		l.logger.Debug("event log listener cannot reconnect yet", "error", err, "retry_in", delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil
		}
		delay = min(2*delay, listenRetryMax)
	}
}

func (l *listener) stop() {
	l.cancel()
	<-l.done
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx) // the connection is being dropped either way
}
