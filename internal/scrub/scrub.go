// Package scrub tells the failures of outbound HTTP requests in our own words. Go's *url.Error
// repeats the request's whole URL, query string included, and WeChat takes its AppSecret (classic
// token mode) and access token in the query string; an error built here names the method, the host
// and path, and what went wrong — nothing the transport wrote — so it may reach a log, a metric
// label, the archive or an HTTP answer.
//
// It imports only the standard library.
package scrub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"syscall"
)

// Error is an outbound request that got no answer we could read.
type Error struct {
	Method string // GET, POST, …
	Target string // host and path: no scheme, user, query string or fragment
	Reason string // in our words: "connection refused", "timed out", …
	cause  error  // what the transport reported, without the URL; never printed
}

func (e *Error) Error() string {
	if e.Method == "" {
		return e.Target + ": " + e.Reason
	}
	return e.Method + " " + e.Target + ": " + e.Reason
}

// Unwrap returns what the transport reported under the *url.Error (so errors.Is finds
// context.DeadlineExceeded or syscall.ECONNRESET); the *url.Error itself, which holds the URL, is
// not reachable.
func (e *Error) Unwrap() error { return e.cause }

// Timeout reports whether the request timed out.
func (e *Error) Timeout() bool { return e.Reason == timedOut }

// Request describes err, from sending req or reading its answer, in our own words. Without req
// (a library made the request), the method and URL come from the *url.Error in err, if any. It
// returns nil for a nil err.
func Request(req *http.Request, err error) error {
	if err == nil {
		return nil
	}
	e := &Error{Reason: Reason(err), cause: err, Target: "(no URL)"}
	var ue *url.Error
	if errors.As(err, &ue) {
		e.cause = ue.Err
		e.Method, e.Target = strings.ToUpper(ue.Op), URL(ue.URL)
	}
	if req != nil {
		e.Method, e.Target = req.Method, Target(req.URL)
	}
	return e
}

// Find reports whether err holds a transport failure (a *url.Error), and tells it in our words.
func Find(err error) (error, bool) {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return nil, false
	}
	return Request(nil, err), true
}

// Target is u's host and path, without its scheme, user, query string or fragment.
func Target(u *url.URL) string {
	if u == nil {
		return "(no URL)"
	}
	return u.Host + u.Path
}

// URL is Target of a URL given as text.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an unreadable URL)"
	}
	return Target(u)
}

// urlInText is a URL in a text: scheme, user information, host and path, query, fragment.
var urlInText = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]{0,15}://)([^\s"'/?#@]*@)?([^\s"'?#]*)(\?[^\s"'#]*)?(#[^\s"']*)?`)

// Text takes the user information, query strings and fragments out of every URL in s. It is a last
// defence for texts that are kept for ever (the archive): errors should be told in our words at
// their source (Request).
func Text(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlInText.ReplaceAllString(s, "$1$3")
}

const timedOut = "timed out"

// Reason says in a few words why a request failed, from the error's type alone.
func Reason(err error) string {
	var (
		netErr    net.Error
		dnsErr    *net.DNSError
		verify    *tls.CertificateVerificationError
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		record    tls.RecordHeaderError
	)
	switch {
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return timedOut
	case errors.As(err, &dnsErr):
		return "the host name did not resolve"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return "network unreachable"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed without an answer"
	case errors.As(err, &verify), errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid):
		return "the server's TLS certificate was not accepted"
	case errors.As(err, &record):
		return "TLS handshake failed"
	}
	return "the request failed"
}
