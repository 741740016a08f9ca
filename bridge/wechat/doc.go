// Package wechat is the WeChat Official Account adapter: the callback endpoint WeChat pushes
// messages and events to (signatures, safe-mode crypto, XML and JSON), and the API client the
// bridge sends through (one token authority for all replicas, customer-service messages, media,
// typing, QR codes, templates), with WeChat's errcodes mapped to a closed set of typed errors.
//
// It imports bridge and compliance only; it never imports another adapter.
package wechat
