// Package bot is the Microsoft Teams adapter: the Bot Framework messaging endpoint
// (POST /api/messages) with full token validation, the activities it handles, the connector
// client that delivers to employees (an azidentity credential, per-thread and per-tenant rate
// limits, retries as Teams documents them), the Adaptive Cards employees see, the employee
// commands, and the administrators' API for enabling WeChat per user.
//
// There is no maintained Go SDK for the Bot Framework; this is a small one of our own. Microsoft
// Graph (msgraph-sdk-go, very slow to compile) is kept out of it, in bot/graph.
//
// It imports bridge and compliance only; it never imports another adapter.
package bot
