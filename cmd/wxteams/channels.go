package main

import (
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/wechat"
)

// This file builds the channel adapters from the configuration.

// newWeChatClient is the WeChat API client; its access token is shared through the database.
func newWeChatClient(cfg *Config, store *sqlstore.Store, clk bridge.Clock, log *zap.Logger) (*wechat.Client, error) {
	host, _ := os.Hostname()
	return wechat.NewClient(wechat.ClientConfig{
		AppID:        cfg.WeChat.AppID,
		Secret:       cfg.WeChat.Secret,
		APIBase:      cfg.WeChat.APIBase,
		ClassicToken: cfg.WeChat.ClassicToken,
		Owner:        fmt.Sprintf("%s/%d", host, os.Getpid()),
	}, store, store, clk, log)
}

// newWeChatCallback is the endpoint WeChat pushes to, handing pushes to the engine.
func newWeChatCallback(cfg *Config, engine *bridge.Engine, clk bridge.Clock, log *zap.Logger) (*wechat.Callback, error) {
	w := cfg.WeChat
	keys := []string{}
	if w.AESKey != "" {
		keys = append(keys, w.AESKey)
	}
	if w.PreviousAESKey != "" {
		keys = append(keys, w.PreviousAESKey)
	}
	tokens := []string{w.Token}
	if w.PreviousToken != "" {
		tokens = append(tokens, w.PreviousToken)
	}
	return wechat.NewCallback(wechat.CallbackConfig{AppID: w.AppID, OriginalID: w.OriginalID, Tokens: tokens, AESKeys: keys}, engine, clk, log)
}
