package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wsrelay/wsrelay/api"
	"github.com/wsrelay/wsrelay/relay"
	"github.com/wsrelay/wsrelay/relay/cluster"
)

// role is what runServer runs besides the API: the upstreams themselves
// (role all), or an ingest and/or an edge on NATS. It gives the API its
// upstream side and wraps the API's handler (an ingest serves only
// /healthz, /readyz and /metrics; an edge answers /readyz from its mirror).
type role interface {
	api.Upstreams
	handler(a *api.Server) http.Handler
	Close()
}

// startRole starts the role of st on broker.
func startRole(ctx context.Context, st *settings, log *slog.Logger, broker *relay.Broker) (role, error) {
	if st.nats == nil {
		r, err := relay.New(relay.Config{Upstreams: st.upstreams, Logger: log}, broker)
		if err != nil {
			return nil, err
		}
		return memoryRole{r}, nil
	}
	nr := &natsRole{ctx: ctx, role: st.role}
	cfg := st.nats.cluster
	cfg.Logger = log
	if st.nats.embedded {
		emb, err := cluster.StartEmbedded(cluster.EmbeddedConfig{DataDir: st.nats.dataDir, Logger: log})
		if err != nil {
			return nil, err
		}
		nr.embedded = emb
		cfg.InProcess = emb.Server()
		log.Info("embedded NATS JetStream server started", "data_dir", st.nats.dataDir)
	}
	if st.role != roleEdge {
		upstreams := make([]relay.UpstreamConfig, len(st.upstreams))
		for i, u := range st.upstreams {
			u.Symbols = nil // the symbol set in NATS says which run
			upstreams[i] = u
		}
		in, err := cluster.NewIngest(cluster.IngestConfig{
			NATS: cfg, Upstreams: st.upstreams,
			NewEngine: func(sink relay.Sink) (cluster.Engine, error) {
				return relay.New(relay.Config{Upstreams: upstreams, Logger: log}, sink)
			},
		})
		if err != nil {
			nr.Close()
			return nil, usagef("nats.%v", err)
		}
		nr.ingest = in
	}
	if st.role != roleIngest {
		e, err := cluster.NewEdge(cluster.EdgeConfig{NATS: cfg, Broker: broker})
		if err != nil {
			nr.Close()
			return nil, usagef("nats.%v", err)
		}
		nr.edge = e
	}
	log.Info("role", "role", st.role, "nats", cluster.RedactURL(cfg.URL), "embedded", st.nats.embedded)
	return nr, nil
}

// symbolCount is the number of configured symbols (for the start log).
func symbolCount(ups []relay.UpstreamConfig) int {
	n := 0
	for _, u := range ups {
		n += len(u.Symbols)
	}
	return n
}

// memoryRole is role all without NATS: today's single process.
type memoryRole struct{ *relay.Relay }

func (m memoryRole) handler(a *api.Server) http.Handler { return a.Handler() }

// natsRole is an ingest, an edge, or both in one process (role all on
// NATS, possibly embedded).
type natsRole struct {
	ctx      context.Context // ends when shutdown starts
	role     string
	embedded *cluster.Embedded
	ingest   *cluster.Ingest
	edge     *cluster.Edge
}

// The api.Upstreams side: an edge's view (the symbol set and the ingest's
// reports), or the ingest's own engine when there is no edge.
func (n *natsRole) ups() api.Upstreams {
	if n.edge != nil {
		return n.edge
	}
	return n.ingest
}

func (n *natsRole) Statuses() []relay.SymbolStatus { return n.ups().Statuses() }
func (n *natsRole) Status(s string) (relay.SymbolStatus, bool) {
	return n.ups().Status(s)
}
func (n *natsRole) Add(up string, s relay.Symbol) (bool, error) { return n.ups().Add(up, s) }
func (n *natsRole) Remove(s string) error                       { return n.ups().Remove(s) }
func (n *natsRole) Upstreams() []string                         { return n.ups().Upstreams() }

// Close stops the ingest (publishing what it buffered, giving the lease
// up), the edge and the embedded server, in that order. Idempotent.
func (n *natsRole) Close() {
	if n.ingest != nil {
		n.ingest.Close()
	}
	if n.edge != nil {
		n.edge.Close()
	}
	if n.embedded != nil {
		n.embedded.Close()
	}
}

func (n *natsRole) handler(a *api.Server) http.Handler {
	reg := a.Registry()
	var cs []prometheus.Collector
	if n.ingest != nil {
		cs = append(cs, n.ingest.Collector())
	}
	if n.edge != nil {
		cs = append(cs, n.edge.Collector())
	}
	for _, c := range cs {
		reg.MustRegister(c)
	}
	if n.edge == nil {
		return n.ingestHandler(reg)
	}
	h := a.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" || r.Method != http.MethodGet {
			if strings.HasPrefix(r.URL.Path, "/v1/") && !n.edge.WaitSymbols(r.Context(), relay.MirrorWait) {
				// Until the symbol set is read, no symbol is unknown: a
				// request waits for it (as for an ID not applied yet),
				// then is refused as not ready.
				w.Header().Set("Retry-After", "1")
				writeStatus(w, http.StatusServiceUnavailable, "not_ready", "reading the symbol set from NATS")
				return
			}
			h.ServeHTTP(w, r)
			return
		}
		if !n.ready(w) {
			return
		}
		if n.ingest != nil {
			h.ServeHTTP(w, r) // role all: also every configured symbol live once
			return
		}
		writeStatus(w, http.StatusOK, "ready", "")
	})
}

// ready answers 503 naming the problem when the process cannot serve; it
// reports whether it can.
func (n *natsRole) ready(w http.ResponseWriter) bool {
	if n.ctx.Err() != nil {
		writeStatus(w, http.StatusServiceUnavailable, "shutting_down", "the relay is shutting down")
		return false
	}
	var errs []error
	if n.edge != nil {
		errs = append(errs, n.edge.Ready())
	}
	if n.ingest != nil {
		errs = append(errs, n.ingest.Ready())
	}
	if err := errors.Join(errs...); err != nil {
		w.Header().Set("Retry-After", "1")
		writeStatus(w, http.StatusServiceUnavailable, "not_ready", err.Error())
		return false
	}
	return true
}

// ingestHandler serves an ingest's /healthz, /readyz and /metrics.
func (n *natsRole) ingestHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusOK, "ok", "")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if n.ready(w) {
			role := "standby"
			if n.ingest.Leader() {
				role = "leader"
			}
			writeStatus(w, http.StatusOK, "ready", role)
		}
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusNotFound, "not_found", "an ingest serves /healthz, /readyz and /metrics only; the API is on the edges")
	})
	return mux
}

// writeStatus writes {"status":…} (2xx, with "role" when set) or the API's
// error shape {"error":{"code","message"}}.
func writeStatus(w http.ResponseWriter, code int, status, msg string) {
	var body any
	if code < 300 {
		b := map[string]string{"status": status}
		if msg != "" {
			b["role"] = msg
		}
		body = b
	} else {
		body = map[string]map[string]string{"error": {"code": status, "message": msg}}
	}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
