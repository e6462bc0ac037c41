package api

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wsrelay/wsrelay/relay"
)

// metrics are the server's Prometheus metrics, on its own registry.
type metrics struct {
	reg         *prometheus.Registry
	sseClients  prometheus.Gauge
	sseEvents   prometheus.Counter
	sseCut      *prometheus.CounterVec
	cuts        map[disconnectReason]prometheus.Counter // sseCut by reason, every one registered
	sseRejected *prometheus.CounterVec
	sseResumes  prometheus.Counter
	sseResets   prometheus.Counter
	sseBlocked  prometheus.Counter
	latency     prometheus.Histogram
	httpReqs    *prometheus.CounterVec
	httpDur     *prometheus.HistogramVec
}

// newMetrics registers the server's own metrics, and the Go and process
// collectors, on a new registry; the upstreams' are added by
// registerUpstreams.
func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	reasons := make([]string, len(disconnectReasons))
	for i, r := range disconnectReasons {
		reasons[i] = r.String()
	}
	m.sseClients = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "wsrelay_sse_clients", Help: "Open SSE streams."})
	m.sseEvents = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wsrelay_sse_events_sent_total", Help: "Events written to SSE clients (quotes, status and reset events)."})
	m.sseCut = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsrelay_sse_disconnects_total", Help: "SSE streams ended, by reason (" + strings.Join(reasons, ", ") + ")."}, []string{"reason"})
	m.sseRejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsrelay_sse_rejected_total", Help: "SSE requests refused before streaming, by error code."}, []string{"code"})
	m.sseResumes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wsrelay_sse_resumes_total", Help: "SSE streams opened with a Last-Event-ID."})
	m.sseResets = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wsrelay_sse_resets_total", Help: "Reset events sent because a resume point could not be honoured."})
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "wsrelay_relay_latency_seconds", Help: "Time from reading an upstream frame to writing its quote to an SSE client.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}})
	m.httpReqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsrelay_http_requests_total", Help: "HTTP requests by route pattern, method and status code."}, []string{"route", "method", "code"})
	m.httpDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "wsrelay_http_request_duration_seconds", Help: "Duration of non-streaming HTTP requests by route pattern and method.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}}, []string{"route", "method"})
	m.sseBlocked = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wsrelay_sse_blocked_writes_total", Help: "Stream writes that found the client's socket full and waited for it (up to sse.write_timeout)."})
	m.reg.MustRegister(m.sseClients, m.sseEvents, m.sseCut, m.sseRejected, m.sseResumes, m.sseResets, m.sseBlocked, m.latency, m.httpReqs, m.httpDur,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.cuts = make(map[disconnectReason]prometheus.Counter, len(disconnectReasons))
	for _, r := range disconnectReasons {
		m.cuts[r] = m.sseCut.WithLabelValues(r.String()) // every reason shows from the start, at 0
	}
	return m
}

// registerUpstreams adds the per-symbol upstream metrics, read from ups
// at scrape time.
func (m *metrics) registerUpstreams(ups Upstreams) {
	m.reg.MustRegister(&upstreamCollector{ups: ups})
}

// disconnected counts a stream that ended.
func (m *metrics) disconnected(r disconnectReason) { m.cuts[r].Inc() }

// delivered counts a batch of events written to a stream: events, the
// latency of each quote from its upstream read, and resets.
func (m *metrics) delivered(batch []*relay.Event, now time.Time) {
	for _, ev := range batch {
		switch ev.Kind {
		case relay.KindQuote:
			m.latency.Observe(now.Sub(ev.ReceivedAt).Seconds())
		case relay.KindReset:
			m.sseResets.Inc()
		}
	}
	m.sseEvents.Add(float64(len(batch)))
}

// upstreamCollector reads the relay's per-symbol counters at scrape time,
// so the relay package needs no metrics code.
type upstreamCollector struct{ ups Upstreams }

var (
	labels        = []string{"upstream", "symbol"}
	descConnected = prometheus.NewDesc("wsrelay_upstream_connected", "1 while the symbol's upstream WebSocket is open.", labels, nil)
	descLive      = prometheus.NewDesc("wsrelay_upstream_state", "1 for the symbol's current state (connecting, live, stale, backoff, rejected).", append(labels, "state"), nil)
	descReconn    = prometheus.NewDesc("wsrelay_upstream_reconnects_total", "Successful upstream connections after the first.", labels, nil)
	descDrops     = prometheus.NewDesc("wsrelay_upstream_drops_total", "Upstream connections that ended.", labels, nil)
	descFrames    = prometheus.NewDesc("wsrelay_upstream_frames_total", "Frames read from the upstream.", labels, nil)
	descQuotes    = prometheus.NewDesc("wsrelay_upstream_quotes_total", "Frames published as quotes.", labels, nil)
	descIgnored   = prometheus.NewDesc("wsrelay_upstream_ignored_frames_total", "Frames that were not quotes (acks, pings, errors, garbage).", labels, nil)
	descLastQuote = prometheus.NewDesc("wsrelay_upstream_last_quote_timestamp_seconds", "Unix time of the symbol's last quote (0 before the first).", labels, nil)
)

func (c *upstreamCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnected, descLive, descReconn, descDrops, descFrames, descQuotes, descIgnored, descLastQuote} {
		ch <- d
	}
}

func (c *upstreamCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.ups.Statuses() {
		l := []string{st.Upstream, st.Symbol}
		conn := 0.0
		if st.Connected {
			conn = 1
		}
		ch <- prometheus.MustNewConstMetric(descConnected, prometheus.GaugeValue, conn, l...)
		for _, s := range []relay.State{relay.StateConnecting, relay.StateLive, relay.StateStale, relay.StateBackoff, relay.StateRejected} {
			v := 0.0
			if st.State == s {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descLive, prometheus.GaugeValue, v, st.Upstream, st.Symbol, string(s))
		}
		ch <- prometheus.MustNewConstMetric(descReconn, prometheus.CounterValue, float64(st.Reconnects), l...)
		ch <- prometheus.MustNewConstMetric(descDrops, prometheus.CounterValue, float64(st.Drops), l...)
		ch <- prometheus.MustNewConstMetric(descFrames, prometheus.CounterValue, float64(st.Frames), l...)
		ch <- prometheus.MustNewConstMetric(descQuotes, prometheus.CounterValue, float64(st.Quotes), l...)
		ch <- prometheus.MustNewConstMetric(descIgnored, prometheus.CounterValue, float64(st.Ignored), l...)
		lq := 0.0
		if !st.LastQuoteAt.IsZero() {
			lq = float64(st.LastQuoteAt.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(descLastQuote, prometheus.GaugeValue, lq, l...)
	}
}
