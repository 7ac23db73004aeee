package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// redacted replaces a password in what Redact returns.
const redacted = "xxxxx"

// dsnPassword matches password and sslpassword settings of a key=value
// connection string, or of a URL query.
var dsnPassword = regexp.MustCompile(`(?i)\b(ssl)?password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]*)`)

// Redact returns connString with its passwords (in the user info, or as
// password= settings) replaced, for messages and logs.
func Redact(connString string) string {
	i := strings.Index(connString, "://")
	if i < 0 { // key=value form
		return dsnPassword.ReplaceAllString(connString, "${1}password="+redacted)
	}
	if u, err := url.Parse(connString); err == nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), redacted)
		}
		connString = u.String()
	} else if j := strings.LastIndex(connString, "@"); j > i {
		// Not a valid URL: blank everything between the scheme and the last @.
		connString = connString[:i+3] + redacted + connString[j:]
	}
	return dsnPassword.ReplaceAllString(connString, "${1}password="+redacted)
}

// secrets returns the passwords written in connString, raw and as they
// appear escaped, so that messages quoting it can be scrubbed.
func secrets(connString string) []string {
	var out []string
	add := func(s string) {
		s = strings.Trim(s, "'")
		if len(s) >= 2 {
			out = append(out, s)
			if un, err := url.QueryUnescape(s); err == nil && un != s {
				out = append(out, un)
			}
		}
	}
	if i := strings.Index(connString, "://"); i >= 0 {
		if j := strings.LastIndex(connString, "@"); j > i {
			if _, pw, ok := strings.Cut(connString[i+3:j], ":"); ok {
				add(pw)
			}
		}
	}
	for _, m := range dsnPassword.FindAllStringSubmatch(connString, -1) {
		add(m[2])
	}
	return out
}

// scrub removes every password of connString from msg.
func scrub(msg, connString string) string {
	for _, s := range secrets(connString) {
		msg = strings.ReplaceAll(msg, s, redacted)
	}
	return msg
}

// parseErrorText is the reason of a ParseConfig error, without the quoted
// connection string.
func parseErrorText(err error) string {
	msg := err.Error()
	if _, rest, ok := strings.Cut(msg, "`: "); ok && strings.HasPrefix(msg, "cannot parse `") {
		msg = rest
	}
	return msg
}

// connError is an error with a message written for people, wrapping the
// driver's error for errors.Is and errors.As.
type connError struct {
	msg string
	err error
}

func (e *connError) Error() string { return e.msg }
func (e *connError) Unwrap() error { return e.err }

// connectError explains a failure to connect in one line that says what to
// do, without the password.
func connectError(display string, cfg *pgx.ConnConfig, connString string, err error) error {
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	var (
		pgErr  *pgconn.PgError
		dnsErr *net.DNSError
		opErr  *net.OpError
		msg    string
	)
	switch {
	case errors.As(err, &pgErr):
		switch pgErr.Code {
		case "28P01", "28000":
			msg = fmt.Sprintf("PostgreSQL at %s refused user %q (%s): check the user and password in the URL", addr, cfg.User, pgErr.Message)
		case "3D000":
			msg = fmt.Sprintf("database %q does not exist on PostgreSQL at %s: create it (createdb %s) or fix the database in the URL", cfg.Database, addr, cfg.Database)
		case "57P03":
			msg = fmt.Sprintf("PostgreSQL at %s is not accepting connections yet (%s): retry when it has started", addr, pgErr.Message)
		case "53300":
			msg = fmt.Sprintf("PostgreSQL at %s has too many connections (%s): close some, or raise max_connections", addr, pgErr.Message)
		default:
			msg = fmt.Sprintf("connect to PostgreSQL at %s: %s", addr, pgErr.Error())
		}
	case errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err):
		msg = fmt.Sprintf("cannot reach PostgreSQL at %s: timed out: start it, or check the host and port in the URL", addr)
	case errors.As(err, &dnsErr):
		msg = fmt.Sprintf("cannot reach PostgreSQL at %s (%s): check the host in the URL", addr, dnsErr.Error())
	case errors.As(err, &opErr):
		msg = fmt.Sprintf("cannot reach PostgreSQL at %s (%s): start it, or check the host and port in the URL", addr, opErr.Err.Error())
	default:
		msg = fmt.Sprintf("connect to PostgreSQL at %s: %s", display, err.Error())
	}
	return &connError{msg: "open event log: " + scrub(msg, connString), err: err}
}
