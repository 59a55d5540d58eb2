package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/driver"
)

// cliError is an error with the exit code it maps to and an optional hint
// printed after it.
type cliError struct {
	code int
	err  error
	hint string
}

func (e *cliError) Error() string { return e.err.Error() }
func (e *cliError) Unwrap() error { return e.err }

// usagef is a usage error (exit 2).
func usagef(format string, args ...any) error {
	return &cliError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// withHint wraps err with an exit code and a hint.
func withHint(code int, err error, hint string) error {
	return &cliError{code: code, err: err, hint: hint}
}

// errHelp reports that --help was asked for and printed: exit 0.
var errHelp = errors.New("help printed")

// parseFlags parses args with fs; --help prints help to stdout and returns
// errHelp, a bad flag is a usage error naming it.
func parseFlags(e *env, fs *flag.FlagSet, help string, args []string) error {
	fs.SetOutput(discard{})
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(e.stdout, help)
			return errHelp
		}
		return &cliError{code: exitUsage, err: err, hint: "run `volley " + fs.Name() + " --help`"}
	}
	return nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// report prints err as one line on stderr and returns its exit code.
func report(ctx context.Context, e *env, err error) int {
	if err == nil || errors.Is(err, errHelp) {
		return exitOK
	}
	code, hint := classify(ctx, err)
	msg := errnoPrefix.ReplaceAllString(oneLine(err.Error()), "")
	if code == exitInterrupted {
		msg = "interrupted; the query was cancelled"
	}
	if hint != "" {
		msg += " (hint: " + hint + ")"
	}
	fmt.Fprintln(e.stderr, "volley: "+msg)
	return code
}

// classify maps an error to its exit code and a hint.
func classify(ctx context.Context, err error) (int, string) {
	var ce *cliError
	if errors.As(err, &ce) && ce.code != exitError {
		return ce.code, ce.hint
	}
	hint := ""
	if ce != nil {
		hint = ce.hint
	}
	var pgErr *pgconn.PgError
	var connErr *pgconn.ConnectError
	var opErr *net.OpError
	var dnsErr *net.DNSError
	switch {
	case ctx.Err() != nil:
		// A signal arrived: whatever the query's error says, the user
		// stopped it.
		return exitInterrupted, ""
	case errors.Is(err, driver.ErrUnknownDriver):
		return exitConnect, orHint(hint, "register it with a blank import of its adapter, or use --driver adbc with a driver library")
	case errors.As(err, &pgErr):
		// The server answered: a query error, not a connection error.
		if pgErr.Code == "28P01" || pgErr.Code == "28000" || pgErr.Code == "3D000" {
			return exitConnect, hint
		}
		return exitError, hint
	case errors.As(err, &connErr), errors.As(err, &opErr), errors.As(err, &dnsErr),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		async.CodeOf(err) == async.ECONNREFUSED:
		return exitConnect, orHint(hint, "is the server running and reachable at that address?")
	}
	return exitError, hint
}

func orHint(h, def string) string {
	if h != "" {
		return h
	}
	return def
}

// oneLine folds a multi-line message onto one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r", "")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ; ")), " ")
}

// errnoPrefix is the "EIO: " an *async.Error puts first: noise for people.
var errnoPrefix = regexp.MustCompile(`^E[A-Z]+: `)

var secretKV = regexp.MustCompile(`(?i)\b(password|passwd|pwd|token|secret|api[_-]?key|access[_-]?key|adbc\.[a-z_.]*(?:password|token))\s*=\s*('[^']*'|"[^"]*"|[^;&\s]*)`)

// redactDSN hides the secrets of a DSN for echoing: a URL's password, and
// password=/token=/secret= values in key=value and ;-separated forms.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" && u.Host != "" {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		changed := false
		for k := range q {
			if secretKV.MatchString(k + "=x") {
				q.Set(k, "xxxxx")
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return secretKV.ReplaceAllString(dsn, "${1}=xxxxx")
}

// dsnSecrets returns the secret values a DSN carries, so that error texts
// can be scrubbed of them whatever a driver put there.
func dsnSecrets(dsn string) []string {
	var out []string
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		if p, ok := u.User.Password(); ok && p != "" {
			out = append(out, p)
		}
		for k, vs := range u.Query() {
			if secretKV.MatchString(k + "=x") {
				out = append(out, vs...)
			}
		}
	}
	for _, m := range secretKV.FindAllStringSubmatch(dsn, -1) {
		v := strings.Trim(m[2], `'"`)
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// scrubbed is an error whose text has the DSN's secrets replaced; it keeps
// the chain for classification.
type scrubbed struct {
	err     error
	secrets []string
}

func (s *scrubbed) Error() string {
	msg := s.err.Error()
	for _, v := range s.secrets {
		if len(v) >= 3 {
			msg = strings.ReplaceAll(msg, v, "xxxxx")
		}
	}
	return msg
}
func (s *scrubbed) Unwrap() error { return s.err }

// scrub wraps err so that none of dsn's secrets appear in its text.
func scrub(err error, dsn string) error {
	if err == nil {
		return nil
	}
	sec := dsnSecrets(dsn)
	if len(sec) == 0 {
		return err
	}
	return &scrubbed{err: err, secrets: sec}
}
