package wechat

import (
	"errors"
	"fmt"
	"time"

	"github.com/wxteams/wxteams/bridge"
)

// ErrorKind is the closed set of things a WeChat API failure can mean to the bridge. Kinds are
// decided from the errcode alone, never from the errmsg text (which WeChat changes and suffixes with
// a request id).
type ErrorKind int

// Error kinds.
const (
	KindPermanent    ErrorKind = iota // anything not listed below: this request will not succeed
	KindWindowClosed                  // 45015: outside the 48 h window, or the customer unfollowed
	KindQuotaUsed                     // 45047: the window's quota is used up
	KindNotFollower                   // 43004, 40003, 48002: the customer cannot receive messages
	KindToken                         // 40001, 40014, 42001: the access token is invalid or expired
	KindDailyQuota                    // 45009: the API's daily call quota is used up
	KindRetryable                     // -1 system busy, 45011 minute quota: try again later
	KindConfig                        // 48001, 40164, 40013, 40125: the account or deployment is misconfigured
)

var kindNames = map[ErrorKind]string{
	KindPermanent: "permanent", KindWindowClosed: "window closed", KindQuotaUsed: "quota used",
	KindNotFollower: "not a follower", KindToken: "token", KindDailyQuota: "daily quota",
	KindRetryable: "retryable", KindConfig: "configuration",
}

func (k ErrorKind) String() string { return kindNames[k] }

// KindOf classifies a WeChat errcode.
func KindOf(code int) ErrorKind {
	switch code {
	case 45015:
		return KindWindowClosed
	case 45047:
		return KindQuotaUsed
	case 43004, 40003, 48002:
		return KindNotFollower
	case 40001, 40014, 42001:
		return KindToken
	case 45009:
		return KindDailyQuota
	case -1, 45011:
		return KindRetryable
	case 48001, 40164, 40013, 40125:
		return KindConfig
	}
	return KindPermanent
}

// APIError is an errcode WeChat answered with.
type APIError struct {
	Op   string // the API, e.g. "message/custom/send"
	Code int    // errcode
	Msg  string // errmsg, as WeChat sent it
}

func (e *APIError) Error() string {
	return fmt.Sprintf("wechat %s: errcode %d (%s): %s", e.Op, e.Code, KindOf(e.Code), e.Msg)
}

// Kind classifies the error.
func (e *APIError) Kind() ErrorKind { return KindOf(e.Code) }

// Is maps the error onto the bridge's delivery sentinels, so the engine applies DESIGN §2's
// delivery rules without knowing WeChat's codes.
func (e *APIError) Is(target error) bool {
	switch target {
	case bridge.ErrWindowClosed:
		return e.Kind() == KindWindowClosed
	case bridge.ErrQuotaUsed:
		return e.Kind() == KindQuotaUsed
	case bridge.ErrNotFollower:
		return e.Kind() == KindNotFollower
	case bridge.ErrRetryLater:
		switch e.Kind() {
		case KindRetryable, KindDailyQuota, KindToken:
			return true
		}
	}
	return false
}

// RetryAfter is how long to wait before trying again, for the kinds that warrant it.
func (e *APIError) RetryAfter() time.Duration {
	if e.Kind() == KindDailyQuota {
		return time.Hour // the quota resets daily (or with clear_quota)
	}
	return 0
}

// deliveryError wraps an APIError as a bridge.ChannelError (whose Code method the bridge reads).
type deliveryError struct{ *APIError }

func (d deliveryError) Code() int { return d.APIError.Code }

func (d deliveryError) Unwrap() error { return d.APIError }

// asDelivery makes an API error readable by the bridge: its errcode, and its sentinel.
func asDelivery(err error) error {
	var api *APIError
	if errors.As(err, &api) {
		return deliveryError{api}
	}
	return err
}

// ErrTransport marks a request that failed before WeChat answered. When the request was not yet
// written, it is safe to retry (bridge.ErrRetryLater); after, the outcome is unknown.
var ErrTransport = errors.New("wechat: no answer")
