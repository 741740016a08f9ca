package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxteams/wxteams/bridge/sqlstore"
)

// storeCollector exports the delivery backlog from the database at scrape time, so every replica
// reports the same shared numbers.
type storeCollector struct {
	store  *sqlstore.Store
	outbox *prometheus.Desc
	queued *prometheus.Desc
	up     *prometheus.Desc
}

func newStoreCollector(s *sqlstore.Store) *storeCollector {
	return &storeCollector{
		store:  s,
		outbox: prometheus.NewDesc("wxteams_outbox_items", "Deliveries not yet made, by channel and state (pending, sending).", []string{"channel", "state"}, nil),
		queued: prometheus.NewDesc("wxteams_queued_messages", "Employee messages queued until their customer writes.", nil, nil),
		up:     prometheus.NewDesc("wxteams_database_up", "1 if the database answered the scrape's queries.", nil, nil),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.outbox
	ch <- c.queued
	ch <- c.up
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	outbox, queued, err := c.store.Backlog(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, o := range outbox {
		ch <- prometheus.MustNewConstMetric(c.outbox, prometheus.GaugeValue, float64(o.N), o.Channel, o.State)
	}
	ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(queued))
}
