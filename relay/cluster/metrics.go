package cluster

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// ingestMetrics are an ingest's counters; Collector exposes them.
type ingestMetrics struct {
	connected     atomic.Bool
	leader        atomic.Bool
	terms         atomic.Uint64
	fenced        atomic.Uint64
	published     atomic.Uint64
	publishErrors atomic.Uint64
	buffered      atomic.Int64
	dropped       atomic.Uint64
	epochBumps    atomic.Uint64
}

var (
	descNATSConnected = prometheus.NewDesc("wsrelay_ingest_nats_connected", "1 while the ingest's connection to NATS is up.", nil, nil)
	descEdgeConnected = prometheus.NewDesc("wsrelay_edge_nats_connected", "1 while the edge's connection to NATS is up.", nil, nil)
	descLeader        = prometheus.NewDesc("wsrelay_ingest_leader", "1 while this ingest holds the lease and publishes.", nil, nil)
	descTerms         = prometheus.NewDesc("wsrelay_ingest_terms_total", "Times this ingest acquired the lease.", nil, nil)
	descFenced        = prometheus.NewDesc("wsrelay_ingest_fenced_total", "Terms ended because another ingest wrote a symbol.", nil, nil)
	descPublished     = prometheus.NewDesc("wsrelay_ingest_published_total", "Quotes stored in the stream.", nil, nil)
	descPublishErrors = prometheus.NewDesc("wsrelay_ingest_publish_errors_total", "Failed publish attempts (each is retried).", nil, nil)
	descBuffered      = prometheus.NewDesc("wsrelay_ingest_buffered_quotes", "Quotes received but not yet stored (waiting for NATS or the lease).", nil, nil)
	descDropped       = prometheus.NewDesc("wsrelay_ingest_dropped_quotes_total", "Quotes dropped because a symbol's buffer (history) was full; edges reset their clients.", nil, nil)
	descEpochBumps    = prometheus.NewDesc("wsrelay_ingest_epoch_changes_written_total", "New epochs written after detected data loss.", nil, nil)
	descEdgeBumps     = prometheus.NewDesc("wsrelay_edge_epoch_changes_written_total", "New epochs written after detected data loss.", nil, nil)

	descReady      = prometheus.NewDesc("wsrelay_edge_ready", "1 once the edge has applied the stream up to its last sequence as of its start.", nil, nil)
	descApplied    = prometheus.NewDesc("wsrelay_edge_applied_sequence", "Stream sequence of the last quote applied.", nil, nil)
	descStreamLast = prometheus.NewDesc("wsrelay_edge_stream_last_sequence", "Stream's last sequence at the last check.", nil, nil)
	descLag        = prometheus.NewDesc("wsrelay_edge_consumer_lag", "Messages the edge's consumer has not delivered yet (as the last message said).", nil, nil)
	descEpochs     = prometheus.NewDesc("wsrelay_edge_epoch_changes_total", "Epoch changes seen (every stream got a reset).", nil, nil)
	descHoles      = prometheus.NewDesc("wsrelay_edge_symbol_resets_total", "Quotes applied after a hole in a symbol's chain or after quotes the ingest lost.", nil, nil)
	descLease      = prometheus.NewDesc("wsrelay_lease_holder", "1 for the ingest that holds the lease (none while no ingest publishes).", []string{"holder"}, nil)
)

// Collect implements prometheus.Collector.
func (m *ingestMetrics) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descNATSConnected, prometheus.GaugeValue, b2f(m.connected.Load()))
	ch <- prometheus.MustNewConstMetric(descLeader, prometheus.GaugeValue, b2f(m.leader.Load()))
	ch <- prometheus.MustNewConstMetric(descTerms, prometheus.CounterValue, float64(m.terms.Load()))
	ch <- prometheus.MustNewConstMetric(descFenced, prometheus.CounterValue, float64(m.fenced.Load()))
	ch <- prometheus.MustNewConstMetric(descPublished, prometheus.CounterValue, float64(m.published.Load()))
	ch <- prometheus.MustNewConstMetric(descPublishErrors, prometheus.CounterValue, float64(m.publishErrors.Load()))
	ch <- prometheus.MustNewConstMetric(descBuffered, prometheus.GaugeValue, float64(m.buffered.Load()))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(m.dropped.Load()))
	ch <- prometheus.MustNewConstMetric(descEpochBumps, prometheus.CounterValue, float64(m.epochBumps.Load()))
}

// Describe implements prometheus.Collector.
func (m *ingestMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNATSConnected, descLeader, descTerms, descFenced, descPublished, descPublishErrors, descBuffered, descDropped, descEpochBumps} {
		ch <- d
	}
}

// edgeMetrics are an edge's counters; Collector exposes them.
type edgeMetrics struct {
	connected  atomic.Bool
	ready      atomic.Bool
	applied    atomic.Uint64
	streamLast atomic.Uint64
	lag        atomic.Uint64
	epochs     atomic.Uint64
	holes      atomic.Uint64
	epochBumps atomic.Uint64

	mu     sync.Mutex
	holder string
}

func (m *edgeMetrics) setHolder(h string) {
	m.mu.Lock()
	m.holder = h
	m.mu.Unlock()
}

// Collect implements prometheus.Collector.
func (m *edgeMetrics) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descEdgeConnected, prometheus.GaugeValue, b2f(m.connected.Load()))
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, b2f(m.ready.Load()))
	ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(m.applied.Load()))
	ch <- prometheus.MustNewConstMetric(descStreamLast, prometheus.GaugeValue, float64(m.streamLast.Load()))
	ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(m.lag.Load()))
	ch <- prometheus.MustNewConstMetric(descEpochs, prometheus.CounterValue, float64(m.epochs.Load()))
	ch <- prometheus.MustNewConstMetric(descHoles, prometheus.CounterValue, float64(m.holes.Load()))
	ch <- prometheus.MustNewConstMetric(descEdgeBumps, prometheus.CounterValue, float64(m.epochBumps.Load()))
	m.mu.Lock()
	h := m.holder
	m.mu.Unlock()
	if h != "" {
		ch <- prometheus.MustNewConstMetric(descLease, prometheus.GaugeValue, 1, h)
	}
}

// Describe implements prometheus.Collector.
func (m *edgeMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEdgeConnected, descReady, descApplied, descStreamLast, descLag, descEpochs, descHoles, descEdgeBumps, descLease} {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
