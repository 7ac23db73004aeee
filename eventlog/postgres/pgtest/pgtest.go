// Package pgtest gives tests a PostgreSQL server to run against: the URL in
// SEQRELAY_TEST_POSTGRES_URL, and a fresh schema per test, dropped at the end.
//
// Without the variable, tests skip, saying how to run them; with
// SEQRELAY_REQUIRE_POSTGRES=1 (as in CI) they fail instead.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// EnvURL names the variable holding the test server's URL.
const EnvURL = "SEQRELAY_TEST_POSTGRES_URL"

// EnvRequire names the variable that turns a missing URL into a failure.
const EnvRequire = "SEQRELAY_REQUIRE_POSTGRES"

// URL returns the test server's URL, or skips (fails, when PostgreSQL is
// required) when none is configured.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u != "" {
		return u
	}
	msg := "PostgreSQL tests need a server: set " + EnvURL + "=postgres://postgres@127.0.0.1:5432/test?sslmode=disable (.ci/run does)"
	if os.Getenv(EnvRequire) == "1" {
		t.Fatal(msg + "; " + EnvRequire + "=1 forbids skipping")
	}
	t.Skip(msg)
	return ""
}

// Schema returns a random schema name for the test (Migrate creates the
// schema) and drops that schema, with everything in it, when the test ends.
func Schema(t testing.TB, url string) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "seqrelay_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := Connect(ctx, url)
		if err != nil {
			t.Errorf("drop test schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop test schema %s: %v", name, err)
		}
	})
	return name
}

// Connect opens a plain connection, retrying for a while when the server
// refuses it (as it does while restarting).
func Connect(ctx context.Context, url string) (*pgx.Conn, error) {
	for {
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			return conn, nil
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WithParams returns url with query parameters set, such as search_path or
// application_name.
func WithParams(t testing.TB, rawURL string, kv ...string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	q := u.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// AppName returns an application_name unique to the schema, so that a test
// can find (and terminate) its own connections and no one else's.
func AppName(schema string) string {
	return "seqrelay-" + strings.TrimPrefix(schema, "seqrelay_test_")
}
