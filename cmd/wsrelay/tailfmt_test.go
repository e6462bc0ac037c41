package main

import (
	"strings"
	"testing"
	"time"
)

// The data shapes are the venues' own frames, as the presets extract them,
// from /work/shared/research/EXCHANGES.md (doc examples and captures cited
// there), trimmed of fields that do not matter here.
var venueShapes = []struct {
	name           string
	data           string
	last, bid, ask string // fields as /v1/symbols would give them ("" = not set)
	want           prices // with those fields
	guess          prices // with no fields at all (the heuristic)
}{
	{name: "binance ticker",
		data: `{"e":"24hrTicker","E":1653812650349,"s":"ETHUSDT","p":"28.23000000","P":"1.600","c":"1792.84000000","Q":"0.55720000","b":"1792.83000000","B":"1.62740000","a":"1792.84000000","A":"20.29140000","n":552479}`,
		last: "/c", bid: "/b", ask: "/a",
		want:  prices{last: "1792.84000000", bid: "1792.83000000", ask: "1792.84000000"},
		guess: prices{last: "1792.84000000", bid: "1792.83000000", ask: "1792.84000000"}},
	{name: "binance bookTicker",
		data: `{"u":99663039038,"s":"BTCUSDT","b":"81207.45000000","B":"2.19538000","a":"81207.46000000","A":"2.27890000"}`,
		bid:  "/b", ask: "/a",
		want:  prices{bid: "81207.45000000", ask: "81207.46000000"},
		guess: prices{bid: "81207.45000000", ask: "81207.46000000"}},
	{name: "binance trade",
		data:  `{"e":"trade","E":1788481292965,"s":"BTCUSDT","t":6653570805,"p":"81207.45000000","q":"0.00016000","T":1788481292964,"m":true,"M":true}`,
		last:  "/p",
		want:  prices{last: "81207.45000000"},
		guess: prices{last: "81207.45000000"}},
	{name: "binance trade of 2022 (b and a were order ids)",
		data:  `{"e":"trade","s":"BNBBTC","t":12345,"p":"0.001","q":"100","b":88,"a":50,"T":123456785,"m":true}`,
		guess: prices{last: "0.001"}},
	{name: "okx tickers",
		data: `{"instType":"SWAP","instId":"BTC-USDT-SWAP","last":"103700","lastSz":"0.01","askPx":"103700","askSz":"1004.09","bidPx":"103699.9","bidSz":"299.02","ts":"1747141319306"}`,
		last: "/last", bid: "/bidPx", ask: "/askPx",
		want:  prices{last: "103700", bid: "103699.9", ask: "103700"},
		guess: prices{last: "103700", bid: "103699.9", ask: "103700"}},
	{name: "okx trades",
		data: `{"instId":"BTC-USDT","tradeId":"314161276","px":"43474.1","sz":"0.00373695","side":"buy","ts":"1646311839593"}`,
		last: "/px", want: prices{last: "43474.1"}, guess: prices{last: "43474.1"}},
	{name: "okx bbo-tbt",
		data: `{"asks":[["8476.98","415","0","13"]],"bids":[["8476.97","256","0","12"]],"ts":"1597026383085","seqId":123}`,
		bid:  "/bids/0/0", ask: "/asks/0/0",
		want:  prices{bid: "8476.97", ask: "8476.98"},
		guess: prices{bid: "8476.97", ask: "8476.98"}},
	{name: "okx ticker, whole frame (no extract)",
		data:  `{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","last":"9999.99","askPx":"9999.99","bidPx":"8888.88"}]}`,
		guess: prices{last: "9999.99", bid: "8888.88", ask: "9999.99"}},
	{name: "bybit tickers",
		data: `{"symbol":"BTCUSDT","lastPrice":"21109.77","highPrice24h":"21426.99","lowPrice24h":"20575","prevPrice24h":"20704.93","price24hPcnt":"0.0196"}`,
		last: "/lastPrice", want: prices{last: "21109.77"}, guess: prices{last: "21109.77"}},
	{name: "bybit publicTrade",
		data: `[{"T":1672304486865,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50","L":"PlusTick","i":"20f43950-d8dd-5b31-9112-a178eb6023af","BT":false}]`,
		last: "/0/p", want: prices{last: "16578.50"}, guess: prices{last: "16578.50"}},
	{name: "bybit orderbook.1",
		data: `{"s":"BTCUSDT","b":[["16493.50","0.006"]],"a":[["16611.00","0.029"]],"u":18521288,"seq":7961638724}`,
		bid:  "/b/0/0", ask: "/a/0/0",
		want:  prices{bid: "16493.50", ask: "16611.00"},
		guess: prices{bid: "16493.50", ask: "16611.00"}},
	{name: "coinbase ticker",
		data: `{"type":"ticker","sequence":135557035414,"product_id":"BTC-USD","price":"81228.94","open_24h":"77026.99","best_bid":"81222.50","best_bid_size":"0.00000091","best_ask":"81228.97","best_ask_size":"0.16229192","side":"sell","trade_id":1088490716}`,
		last: "/price", bid: "/best_bid", ask: "/best_ask",
		want:  prices{last: "81228.94", bid: "81222.50", ask: "81228.97"},
		guess: prices{last: "81228.94", bid: "81222.50", ask: "81228.97"}},
	{name: "coinbase match",
		data: `{"type":"match","trade_id":1088490717,"side":"sell","size":"0.00609388","price":"81222.94","product_id":"BTC-USD","sequence":135557036119}`,
		last: "/price", want: prices{last: "81222.94"}, guess: prices{last: "81222.94"}},
	{name: "kraken ticker",
		data: `[{"symbol":"BTC/USD","bid":81205.0,"bid_qty":0.58905885,"ask":81205.1,"ask_qty":0.69697106,"last":81205.1,"volume":4696.17832496,"change":4166.6}]`,
		last: "/0/last", bid: "/0/bid", ask: "/0/ask",
		want:  prices{last: "81205.1", bid: "81205.0", ask: "81205.1"},
		guess: prices{last: "81205.1", bid: "81205.0", ask: "81205.1"}},
	{name: "kraken trade",
		data: `[{"symbol":"BTC/USD","side":"buy","price":81205.1,"qty":0.00003630,"ord_type":"limit","trade_id":106799953},{"symbol":"BTC/USD","price":81205.2,"qty":0.002}]`,
		last: "/0/price", want: prices{last: "81205.1"}, guess: prices{last: "81205.1"}},
	{name: "htx ticker",
		data: `{"open":27516.87,"high":27623.31,"low":26120.0,"close":26274.0,"amount":6489.818597098022,"vol":1.750934985679804E8,"count":141080,"bid":26275.21,"bidSize":0.2709,"ask":26275.22,"askSize":0.86,"lastPrice":26274.0,"lastSize":9.47E-4}`,
		last: "/close", bid: "/bid", ask: "/ask",
		want:  prices{last: "26274.0", bid: "26275.21", ask: "26275.22"},
		guess: prices{last: "26274.0", bid: "26275.21", ask: "26275.22"}},
	{name: "htx trade.detail (an id beyond 2^53)",
		data: `{"id":193150647715,"ts":1788335110452,"data":[{"id":1931506477151671992419320033,"ts":1788335110452,"tradeId":103627913547,"amount":1.8E-4,"price":77523.25,"direction":"sell"}]}`,
		last: "/data/0/price", want: prices{last: "77523.25"}, guess: prices{last: "77523.25"}},
	{name: "htx bbo",
		data: `{"seqId":155441231856,"ask":31764.09,"askSize":0.794873,"bid":31764.08,"bidSize":4.378544,"quoteTime":1654031600064,"symbol":"btcusdt"}`,
		bid:  "/bid", ask: "/ask",
		want:  prices{bid: "31764.08", ask: "31764.09"},
		guess: prices{bid: "31764.08", ask: "31764.09"}},
	{name: "bitfinex ticker (positional: only through fields)",
		data: `[0.003744,358.96223856,0.0037548,338.14332753,-0.0000834,-0.02175955,0.0037494,1284.13109312,0.0038328,0.0035223]`,
		last: "/6", bid: "/0", ask: "/2",
		want: prices{last: "0.0037494", bid: "0.003744", ask: "0.0037548"}},
	{name: "deribit ticker",
		data: `{"timestamp":1765541474086,"state":"open","stats":{"high":93612.0,"low":89277.5,"price_change":2.3275},"index_price":92263.55,"instrument_name":"BTC-PERPETUAL","last_price":92283.5,"mark_price":92281.78,"best_ask_price":92284.0,"best_bid_price":92283.5,"best_ask_amount":186520.0}`,
		last: "/last_price", bid: "/best_bid_price", ask: "/best_ask_price",
		want:  prices{last: "92283.5", bid: "92283.5", ask: "92284.0"},
		guess: prices{last: "92283.5", bid: "92283.5", ask: "92284.0"}},
	{name: "deribit trades",
		data: `[{"timestamp":1765531356452,"price":92294.5,"amount":10.0,"direction":"sell","index_price":92276.75,"instrument_name":"BTC-PERPETUAL","mark_price":92287.11,"trade_id":"403691824"}]`,
		last: "/0/price", want: prices{last: "92294.5"}, guess: prices{last: "92294.5"}},
	{name: "deribit quote, whole frame (no extract)",
		data:  `{"jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.BTC-PERPETUAL","data":{"timestamp":1654012882984,"instrument_name":"BTC-PERPETUAL","best_bid_price":32143.0,"best_bid_amount":179960.0,"best_ask_price":32143.5,"best_ask_amount":20.0}}}`,
		guess: prices{bid: "32143.0", ask: "32143.5"}},
	{name: "gate tickers",
		data: `{"currency_pair":"BTC_USDT","last":"29968.31","lowest_ask":"29968.31","highest_bid":"29968.3","change_percentage":"-5.3731","high_24h":"32399.99","low_24h":"29324.36"}`,
		last: "/last", bid: "/highest_bid", ask: "/lowest_ask",
		want:  prices{last: "29968.31", bid: "29968.3", ask: "29968.31"},
		guess: prices{last: "29968.31", bid: "29968.3", ask: "29968.31"}},
	{name: "gate book_ticker",
		data: `{"t":1654029559473,"u":6765708346,"s":"BTC_USDT","b":"31738.93","B":"2.3039","a":"31738.94","A":"0.335"}`,
		bid:  "/b", ask: "/a",
		want:  prices{bid: "31738.93", ask: "31738.94"},
		guess: prices{bid: "31738.93", ask: "31738.94"}},
	{name: "gate trades",
		data: `{"id":1638417041,"create_time":1631824310,"create_time_ms":"1631824310261.896","side":"buy","currency_pair":"BTC_USDT","amount":"0.00052","price":"47395.009"}`,
		last: "/price", want: prices{last: "47395.009"}, guess: prices{last: "47395.009"}},
	{name: "kucoin ticker",
		data: `{"bestAsk":"31785.3","bestAskSize":"1.0455757","bestBid":"31785.2","bestBidSize":"0.4645037","price":"31785.2","sequence":"1630218274617","size":"0.03133705","time":1654032320677}`,
		last: "/price", bid: "/bestBid", ask: "/bestAsk",
		want:  prices{last: "31785.2", bid: "31785.2", ask: "31785.3"},
		guess: prices{last: "31785.2", bid: "31785.2", ask: "31785.3"}},
	{name: "bitstamp trade",
		data: `{"id":629344156,"timestamp":"1788481329","amount":0.07375969,"amount_str":"0.07375969","price":81263.98,"price_str":"81263.98","type":0,"buy_order_id":2046551467757570,"sell_order_id":2046551452086274}`,
		last: "/price_str", want: prices{last: "81263.98"}, guess: prices{last: "81263.98"}},
	{name: "bitstamp order book",
		data: `{"timestamp":"1788481325","microtimestamp":"1788481325406795","bids":[["81254.37","0.56250000"],["81254.07","0.07500000"]],"asks":[["81263.98","0.68285797"],["81264.00","1.20000000"]]}`,
		bid:  "/bids/0/0", ask: "/asks/0/0",
		want:  prices{bid: "81254.37", ask: "81263.98"},
		guess: prices{bid: "81254.37", ask: "81263.98"}},
	{name: "seed feed",
		data:  `{"group":"QuoteBin5m:14","data":[{"low":"55.42","high":"55.63","open":"55.42","close":"55.59","last_price":"55.59","volume":"40078","timestamp":1551941701}]}`,
		guess: prices{last: "55.59"}},
	{name: "a price far beyond float64 keeps its digits",
		data: `{"c":123456789012345678901234567890.123456789,"b":"1e400"}`,
		last: "/c", bid: "/b",
		want:  prices{last: "123456789012345678901234567890.123456789", bid: "1e400"},
		guess: prices{bid: "1e400"}}, // a bare number under a one-letter key is not taken for a price
	{name: "the data is the price",
		data: `"81207.45"`, guess: prices{last: "81207.45"}},
	{name: "fields that match nothing fall back to the heuristic",
		data: `{"price":"1.5"}`, last: "/nope", bid: "/0",
		want: prices{last: "1.5"}, guess: prices{last: "1.5"}},
	{name: "pointer escapes (~1 is /, ~0 is ~)",
		data: `{"a/b":{"~x":"7"}}`, last: "/a~1b/~0x", want: prices{last: "7"}},
	{name: "nothing that looks like a price",
		data: `{"event":"info","version":2}`},
	{name: "a control character is not printed raw",
		data: "{\"price\":\"1\\u001b[31m\"}", guess: prices{last: `"1\x1b[31m"`}, last: "/price", want: prices{last: `"1\x1b[31m"`}},
}

func TestPickPricesVenues(t *testing.T) {
	for _, c := range venueShapes {
		t.Run(c.name, func(t *testing.T) {
			if c.last != "" || c.bid != "" || c.ask != "" {
				f := parseFields(c.last, c.bid, c.ask)
				if f == nil {
					t.Fatalf("fields %q %q %q did not parse", c.last, c.bid, c.ask)
				}
				if got := pickPrices([]byte(c.data), f); got != c.want {
					t.Errorf("with fields: %+v, want %+v", got, c.want)
				}
			}
			if got := pickPrices([]byte(c.data), nil); got != c.guess {
				t.Errorf("guessed: %+v, want %+v", got, c.guess)
			}
		})
	}
}

func TestParseFieldsRejectsMalformed(t *testing.T) {
	if f := parseFields("c", "/x~2", "/~"); f != nil {
		t.Fatalf("malformed pointers gave fields %+v", f)
	}
	if f := parseFields("", "", ""); f != nil {
		t.Fatalf("no pointers gave fields %+v", f)
	}
	if f := parseFields("/", "", "/0"); f == nil || len(f.last) != 1 || f.last[0] != "" || f.bid != nil || f.ask[0] != "0" {
		t.Fatalf("parseFields: %+v", f)
	}
}

func TestFormatQuote(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := at.Add(3 * time.Millisecond)
	quote := func(sym, data string) []byte {
		return []byte(`{"symbol":"` + sym + `","seq":7,"received_at":"2026-01-01T00:00:00Z","stale":false,"data":` + data + `}`)
	}
	fieldsOf := func(sym string) *quoteFields {
		if sym == "BTCUSDT" {
			return parseFields("/c", "/b", "/a")
		}
		return nil
	}
	for _, c := range []struct {
		raw  []byte
		want string
	}{
		{quote("BTCUSDT", `{"c":"1792.84","b":"1792.83","a":"1792.85","p":"28.2"}`),
			"BTCUSDT    seq=7        last=1792.84  bid=1792.83  ask=1792.85  relay+3ms"},
		{quote("14", `{"group":"QuoteBin5m:14","data":[{"close":"1.5","last_price":"1.5","sent_ns":1767225600000000000}]}`),
			"14         seq=7        last=1.5  relay+3ms  e2e=3ms"},
		{quote("tBTCUSD", `[0.003744,358.96,0.0037548]`),
			"tBTCUSD    seq=7        data=[0.003744,358.96,0.0037548]  relay+3ms"},
		{[]byte(`{"symbol":"S","seq":1,"received_at":"2026-01-01T00:00:00Z","stale":true,"data":{"last":"2"}}`),
			"S          seq=1        last=2  relay+3ms  STALE"},
		{[]byte("not json \x1b[2J"), `"not json \x1b[2J"`},
	} {
		if got := formatQuote(c.raw, fieldsOf, now); got != c.want {
			t.Errorf("formatQuote(%s)\n got %q\nwant %q", c.raw, got, c.want)
		}
	}
	long := quote("X", `{"info":"`+strings.Repeat("x", 500)+`"}`)
	if got := formatQuote(long, nil, now); len(got) > 200 || !strings.Contains(got, "…") {
		t.Errorf("a long data is not cut: %d bytes", len(got))
	}
}

// FuzzPickPrices: any data and any pointer give a result, never a panic.
func FuzzPickPrices(f *testing.F) {
	for _, c := range venueShapes {
		f.Add(c.data, c.last)
	}
	f.Fuzz(func(t *testing.T, data, pointer string) {
		pickPrices([]byte(data), parseFields(pointer, pointer, ""))
		formatQuote([]byte(data), nil, time.Now())
	})
}
