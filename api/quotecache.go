package api

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/wsrelay/wsrelay/relay"
)

// quoteCache keeps, per symbol, the response GET /v1/quotes/{symbol}
// gives for its latest quote, built once per quote rather than per
// request. Safe for concurrent use.
type quoteCache struct {
	mu       sync.RWMutex
	bySymbol map[string]*cachedQuote
}

func newQuoteCache() *quoteCache {
	return &quoteCache{bySymbol: map[string]*cachedQuote{}}
}

// cachedQuote is one quote's REST response: its body and header values.
// It is shared by every request and never modified.
type cachedQuote struct {
	ev           *relay.Event
	stale        bool
	etag         string
	etagH        []string
	lastModified []string
	length       []string
	body         []byte // quote JSON and a newline
}

// get returns the response for ev (the symbol's latest quote, stale or
// not), building it when the cached one is for another quote.
func (c *quoteCache) get(ev *relay.Event, stale bool) *cachedQuote {
	c.mu.RLock()
	cq := c.bySymbol[ev.Symbol]
	c.mu.RUnlock()
	if cq != nil && cq.ev == ev && cq.stale == stale {
		return cq
	}
	body := quoteJSON(ev, stale)
	b := make([]byte, 0, len(body)+1)
	b = append(append(b, body...), '\n')
	etag := `"` + ev.ID.String() + `"`
	cq = &cachedQuote{
		ev: ev, stale: stale, etag: etag, etagH: []string{etag},
		lastModified: []string{ev.ReceivedAt.UTC().Format(http.TimeFormat)},
		length:       []string{strconv.Itoa(len(b))},
		body:         b,
	}
	c.mu.Lock()
	c.bySymbol[ev.Symbol] = cq
	c.mu.Unlock()
	return cq
}

// drop forgets a removed symbol's response.
func (c *quoteCache) drop(symbol string) {
	c.mu.Lock()
	delete(c.bySymbol, symbol)
	c.mu.Unlock()
}
