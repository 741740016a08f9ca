package bridge

import "time"

// Receipts is told what the channel endpoints take in once a request has proven it comes from the
// channel (WeChat's signature, a Bot Framework or Entra token): each one received, and each one
// then refused — not archived — and why. Health checks and unauthenticated calls are not receipts.
// cmd/wxteams counts refusals for the completeness report and judges from receipts whether the
// bridge has stalled.
type Receipts interface {
	// Received: a push or activity from the channel arrived at.
	Received(ch Channel, at time.Time)
	// Refused: one that was received was then refused, for reason (a short stable word, such as
	// "not_recorded"; never message content). at is the time its Received was told (the stall
	// judge pairs a refusal with its receipt by that time), and only a receipt that was told may be
	// refused.
	Refused(ch Channel, reason string, at time.Time)
}

// RefusalCount is how many receipts of a channel were refused for a reason in an hour (UTC).
type RefusalCount struct {
	Hour    time.Time
	Channel Channel
	Reason  string
	N       int64
}
