package main

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/compliance"
)

// Metrics, served on the internal listener only. Counters come from what the engine archives (so
// they count exactly what the record holds); gauges are read from the database at scrape time, so
// every replica reports the same shared numbers.

// storeCollector exports the delivery backlog, the queues and the chats' states from the database.
type storeCollector struct {
	store  *sqlstore.Store
	window func() time.Duration
	clock  bridge.Clock
	outbox *prometheus.Desc
	queued *prometheus.Desc
	chats  *prometheus.Desc
	open   *prometheus.Desc
	up     *prometheus.Desc
}

func newStoreCollector(s *sqlstore.Store, window func() time.Duration, clk bridge.Clock) *storeCollector {
	return &storeCollector{
		store: s, window: window, clock: clk,
		outbox: prometheus.NewDesc("wxteams_outbox_items", "Deliveries not yet made, by channel and state (pending, sending).", []string{"channel", "state"}, nil),
		queued: prometheus.NewDesc("wxteams_queued_messages", "Employee messages queued until their customer writes.", nil, nil),
		chats:  prometheus.NewDesc("wxteams_chats", "Chats by status (pending, active, capped, inactive, left, closed).", []string{"status"}, nil),
		open:   prometheus.NewDesc("wxteams_chats_window_open", "Chats whose customer wrote within WeChat's window, by status.", []string{"status"}, nil),
		up:     prometheus.NewDesc("wxteams_database_up", "1 if the database answered the scrape's queries.", nil, nil),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.outbox, c.queued, c.chats, c.open, c.up} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	outbox, queued, err := c.store.Backlog(ctx)
	var chats []sqlstore.ChatCount
	if err == nil {
		chats, err = c.store.ChatStates(ctx, c.clock.Now().Add(-c.window()))
	}
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, o := range outbox {
		ch <- prometheus.MustNewConstMetric(c.outbox, prometheus.GaugeValue, float64(o.N), o.Channel, o.State)
	}
	ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(queued))
	for _, s := range chats {
		ch <- prometheus.MustNewConstMetric(c.chats, prometheus.GaugeValue, float64(s.N), s.Status)
		ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(s.WindowOpen), s.Status)
	}
}

// engineMetrics turns what the engine archives into counters (bridge.Observer).
type engineMetrics struct {
	messages   *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	wechatErrs *prometheus.CounterVec
	throttled  prometheus.Counter
	wait       *prometheus.HistogramVec
}

func newEngineMetrics(reg prometheus.Registerer) *engineMetrics {
	m := &engineMetrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wxteams_messages_total",
			Help: "Messages archived, by direction: from_customer, from_employee, auto (scripted, to either side)."}, []string{"direction"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wxteams_deliveries_total",
			Help: "Delivery outcomes by channel: delivered, retry, failed, unknown (outcome unknown), requeued (WeChat window or quota)."}, []string{"channel", "outcome"}),
		wechatErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wxteams_wechat_errors_total",
			Help: "WeChat errcodes answered to deliveries."}, []string{"errcode"}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{Name: "wxteams_teams_throttled_total",
			Help: "Teams deliveries answered 429 (Teams' rate limits); each is retried."}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "wxteams_delivery_seconds",
			Help:    "Time from a message being committed for delivery to the channel accepting it.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600}}, []string{"channel"}),
	}
	reg.MustRegister(m.messages, m.deliveries, m.wechatErrs, m.throttled, m.wait)
	return m
}

var deliveryOutcomes = map[compliance.Kind]string{
	compliance.KindDelivered: "delivered", compliance.KindDeliveryRetry: "retry", compliance.KindDeliveryFailed: "failed",
	compliance.KindOutcomeUnknown: "unknown", compliance.KindRequeued: "requeued",
}

// Archived counts the events of a committed step.
func (m *engineMetrics) Archived(events []compliance.Event) {
	for _, ev := range events {
		switch ev.Kind {
		case compliance.KindCustomerMessage:
			m.messages.WithLabelValues("from_customer").Inc()
		case compliance.KindEmployeeMessage:
			m.messages.WithLabelValues("from_employee").Inc()
		case compliance.KindAutoMessage:
			m.messages.WithLabelValues("auto").Inc()
		}
		outcome, isDelivery := deliveryOutcomes[ev.Kind]
		if !isDelivery {
			continue
		}
		m.deliveries.WithLabelValues(ev.Meta.Channel, outcome).Inc()
		switch {
		case ev.Meta.Channel == string(bridge.ChannelWeChat) && ev.Meta.ErrCode != 0:
			m.wechatErrs.WithLabelValues(strconv.Itoa(ev.Meta.ErrCode)).Inc()
		case ev.Meta.Channel == string(bridge.ChannelTeams) && ev.Meta.ErrCode == 429:
			m.throttled.Inc()
		}
	}
}

// Delivered records how long a delivered message waited.
func (m *engineMetrics) Delivered(channel bridge.Channel, waited time.Duration) {
	m.wait.WithLabelValues(string(channel)).Observe(waited.Seconds())
}
