package main

import (
	"encoding/json"
	"testing"

	"github.com/wsrelay/wsrelay/relay/presets"
)

// presetFrames are wire frames of each preset's channels, as the venue
// sends them (after decompression), with the prices tail must show. They
// come from /work/shared/research/EXCHANGES.md (doc examples and captures
// cited there), except KuCoin's level1, which follows KuCoin's "Level1 -
// BBO Market Data" doc example.
var presetFrames = map[string]struct {
	frame string
	want  prices
}{
	"binance/ticker": {`{"e":"24hrTicker","E":1653812650349,"s":"ETHUSDT","p":"28.23000000","P":"1.600","w":"1781.16275609","x":"1764.61000000","c":"1792.84000000","Q":"0.55720000","b":"1792.83000000","B":"1.62740000","a":"1792.84000000","A":"20.29140000","o":"1764.61000000","h":"1808.98000000","l":"1748.94000000","v":"471703.53110000","q":"840180761.51358100","O":1653726250344,"C":1653812650344,"F":841094172,"L":841646650,"n":552479}`,
		prices{last: "1792.84000000", bid: "1792.83000000", ask: "1792.84000000"}},
	"binance/trades": {`{"e":"trade","E":1788481292965,"s":"BTCUSDT","t":6653570805,"p":"81207.45000000","q":"0.00016000","T":1788481292964,"m":true,"M":true}`,
		prices{last: "81207.45000000"}},
	"binance/bbo": {`{"u":99663039038,"s":"BTCUSDT","b":"81207.45000000","B":"2.19538000","a":"81207.46000000","A":"2.27890000"}`,
		prices{bid: "81207.45000000", ask: "81207.46000000"}},
	"okx/ticker": {`{"arg":{"channel":"tickers","instId":"BTC-USDT-SWAP"},"data":[{"instType":"SWAP","instId":"BTC-USDT-SWAP","last":"103700","lastSz":"0.01","askPx":"103700","askSz":"1004.09","bidPx":"103699.9","bidSz":"299.02","open24h":"103897.5","high24h":"104628.1","low24h":"100700","sodUtc0":"102740.1","sodUtc8":"102480.1","volCcy24h":"109187.9625","vol24h":"10918796.25","ts":"1747141319306"}]}`,
		prices{last: "103700", bid: "103699.9", ask: "103700"}},
	"okx/trades": {`{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"314161276","px":"43474.1","sz":"0.00373695","side":"buy","ts":"1646311839593"}]}`,
		prices{last: "43474.1"}},
	"okx/bbo": {`{"arg":{"channel":"bbo-tbt","instId":"BTC-USDT"},"data":[{"asks":[["8476.98","415","0","13"]],"bids":[["8476.97","256","0","12"]],"ts":"1597026383085","seqId":123}]}`,
		prices{bid: "8476.97", ask: "8476.98"}},
	"bybit/ticker": {`{"topic":"tickers.BTCUSDT","ts":1673853746003,"type":"snapshot","cs":2588407389,"data":{"symbol":"BTCUSDT","lastPrice":"21109.77","highPrice24h":"21426.99","lowPrice24h":"20575","prevPrice24h":"20704.93","volume24h":"6780.866843","turnover24h":"141946527.22907118","price24hPcnt":"0.0196","usdIndexPrice":"21120.2400136"}}`,
		prices{last: "21109.77"}},
	"bybit/trades": {`{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,"data":[{"T":1672304486865,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50","L":"PlusTick","i":"20f43950-d8dd-5b31-9112-a178eb6023af","BT":false,"seq":1783284617}]}`,
		prices{last: "16578.50"}},
	"bybit/bbo": {`{"topic":"orderbook.1.BTCUSDT","type":"snapshot","ts":1672304484978,"data":{"s":"BTCUSDT","b":[["16493.50","0.006"]],"a":[["16611.00","0.029"]],"u":18521288,"seq":7961638724},"cts":1672304484976}`,
		prices{bid: "16493.50", ask: "16611.00"}},
	"coinbase/ticker": {`{"type":"ticker","sequence":135557035414,"product_id":"BTC-USD","price":"81228.94","open_24h":"77026.99","volume_24h":"10973.39542777","low_24h":"76929.29","high_24h":"82283","volume_30d":"210811.57557364","best_bid":"81222.50","best_bid_size":"0.00000091","best_ask":"81228.97","best_ask_size":"0.16229192","side":"sell","time":"2026-09-04T00:21:02.905270Z","trade_id":1088490716,"last_size":"0.013388"}`,
		prices{last: "81228.94", bid: "81222.50", ask: "81228.97"}},
	"coinbase/trades": {`{"type":"match","trade_id":1088490717,"maker_order_id":"1aad6dd4-c00b-454e-81c4-16033085708e","taker_order_id":"9060f53e-620c-408f-a8fc-a1e33a55b0ad","side":"sell","size":"0.00609388","price":"81222.94","product_id":"BTC-USD","sequence":135557036119,"time":"2026-09-04T00:21:03.878125Z"}`,
		prices{last: "81222.94"}},
	"kraken/ticker": {`{"channel":"ticker","type":"snapshot","data":[{"symbol":"BTC/USD","bid":81205.0,"bid_qty":0.58905885,"ask":81205.1,"ask_qty":0.69697106,"last":81205.1,"volume":4696.17832496,"vwap":80044.4,"low":76949.6,"high":82288.1,"change":4166.6,"change_pct":5.41,"trades":145275,"timestamp":"2026-09-04T00:21:20.217476Z"}]}`,
		prices{last: "81205.1", bid: "81205.0", ask: "81205.1"}},
	"kraken/trades": {`{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":81205.1,"qty":0.00003630,"ord_type":"limit","trade_id":106799953,"timestamp":"2026-09-04T00:21:20.564568Z"},{"symbol":"BTC/USD","side":"buy","price":81205.1,"qty":0.00200000,"ord_type":"limit","trade_id":106799954,"timestamp":"2026-09-04T00:21:20.564568Z"}]}`,
		prices{last: "81205.1"}},
	"kraken/bbo": {`{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":81205.0,"bid_qty":0.58905885,"ask":81205.1,"ask_qty":0.69697106,"last":81205.1,"volume":4696.17832496}]}`,
		prices{last: "81205.1", bid: "81205.0", ask: "81205.1"}},
	"htx/ticker": {`{"ch":"market.btcusdt.ticker","ts":1683877598657,"tick":{"open":27516.87,"high":27623.31,"low":26120.0,"close":26274.0,"amount":6489.818597098022,"vol":1.750934985679804E8,"count":141080,"bid":26275.21,"bidSize":0.2709,"ask":26275.22,"askSize":0.86,"lastPrice":26274.0,"lastSize":9.47E-4}}`,
		prices{last: "26274.0", bid: "26275.21", ask: "26275.22"}},
	"htx/trades": {`{"ch":"market.btcusdt.trade.detail","ts":1788335110454,"tick":{"id":193150647715,"ts":1788335110452,"data":[{"id":1931506477151671992419320033,"ts":1788335110452,"tradeId":103627913547,"amount":1.8E-4,"price":77523.25,"direction":"sell","isRpiTrade":false}]}}`,
		prices{last: "77523.25"}},
	"htx/bbo": {`{"ch":"market.btcusdt.bbo","ts":1654031600066,"tick":{"seqId":155441231856,"ask":31764.09,"askSize":0.794873,"bid":31764.08,"bidSize":4.378544,"quoteTime":1654031600064,"symbol":"btcusdt"}}`,
		prices{bid: "31764.08", ask: "31764.09"}},
	"bitfinex/ticker": {`[225000,[0.003744,358.96223856,0.0037548,338.14332753,-0.0000834,-0.02175955,0.0037494,1284.13109312,0.0038328,0.0035223]]`,
		prices{last: "0.0037494", bid: "0.003744", ask: "0.0037548"}},
	"bitfinex/trades": {`[91,"te",[814055101,1630651865424,-0.17982184,49453]]`,
		prices{last: "49453"}},
	"deribit/ticker": {`{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-PERPETUAL.100ms","data":{"timestamp":1765541474086,"state":"open","stats":{"high":93612.0,"low":89277.5,"price_change":2.3275,"volume":11897.27640428},"index_price":92263.55,"instrument_name":"BTC-PERPETUAL","last_price":92283.5,"settlement_price":92464.66,"min_price":90897.5,"max_price":93666.5,"mark_price":92281.78,"best_ask_price":92284.0,"best_bid_price":92283.5,"best_ask_amount":186520.0,"best_bid_amount":117660.0}}}`,
		prices{last: "92283.5", bid: "92283.5", ask: "92284.0"}},
	"deribit/trades": {`{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.100ms","data":[{"timestamp":1765531356452,"price":92294.5,"amount":10.0,"direction":"sell","index_price":92276.75,"instrument_name":"BTC-PERPETUAL","trade_seq":271252854,"mark_price":92287.11,"tick_direction":2,"contracts":1.0,"combo_trade_id":"43","trade_id":"403691824"}]}}`,
		prices{last: "92294.5"}},
	"deribit/bbo": {`{"jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.BTC-PERPETUAL","data":{"timestamp":1654012882984,"instrument_name":"BTC-PERPETUAL","best_bid_price":32143.0,"best_bid_amount":179960.0,"best_ask_price":32143.5,"best_ask_amount":20.0}}}`,
		prices{bid: "32143.0", ask: "32143.5"}},
	"gateio/ticker": {`{"time":1654161931,"channel":"spot.tickers","event":"update","result":{"currency_pair":"BTC_USDT","last":"29968.31","lowest_ask":"29968.31","highest_bid":"29968.3","change_percentage":"-5.3731","base_volume":"10676.32785905","quote_volume":"324419781.600232","high_24h":"32399.99","low_24h":"29324.36"}}`,
		prices{last: "29968.31", bid: "29968.3", ask: "29968.31"}},
	"gateio/trades": {`{"time":1631824310,"channel":"spot.trades","event":"update","result":{"id":1638417041,"create_time":1631824310,"create_time_ms":"1631824310261.896","side":"buy","currency_pair":"BTC_USDT","amount":"0.00052","price":"47395.009"}}`,
		prices{last: "47395.009"}},
	"gateio/bbo": {`{"time":1654029559,"channel":"spot.book_ticker","event":"update","result":{"t":1654029559473,"u":6765708346,"s":"BTC_USDT","b":"31738.93","B":"2.3039","a":"31738.94","A":"0.335"}}`,
		prices{bid: "31738.93", ask: "31738.94"}},
	"kucoin/ticker": {`{"type":"message","topic":"/market/ticker:BTC-USDT","subject":"trade.ticker","data":{"bestAsk":"31785.3","bestAskSize":"1.0455757","bestBid":"31785.2","bestBidSize":"0.4645037","price":"31785.2","sequence":"1630218274617","size":"0.03133705","time":1654032320677}}`,
		prices{last: "31785.2", bid: "31785.2", ask: "31785.3"}},
	"kucoin/trades": {`{"data":{"symbol":"BTC-USDT","sequence":"1614503482134","side":"buy","size":"0.00013064","price":"57659.6","takerOrderId":"6057bb821220fc00060f26bf","time":"1616362370760468781","type":"match","makerOrderId":"6057bb81b5ab390006532c9d","tradeId":"6057bb822e113d292396c272"},"subject":"trade.l3match","topic":"/market/match:BTC-USDT","type":"message"}`,
		prices{last: "57659.6"}},
	"kucoin/bbo": {`{"type":"message","topic":"/spotMarket/level1:BTC-USDT","subject":"level1","data":{"asks":["9989","8"],"bids":["9988","2"],"timestamp":1586294525000}}`,
		prices{bid: "9988", ask: "9989"}},
	"bitstamp/ticker": {`{"data":{"id":629344156,"timestamp":"1788481329","amount":0.07375969,"amount_str":"0.07375969","price":81263.98,"price_str":"81263.98","type":0,"microtimestamp":"1788481329090000","buy_order_id":2046551467757570,"sell_order_id":2046551452086274},"channel":"live_trades_btcusd","event":"trade"}`,
		prices{last: "81263.98"}},
	"bitstamp/trades": {`{"data":{"id":629344156,"timestamp":"1788481329","amount":0.07375969,"amount_str":"0.07375969","price":81263.98,"price_str":"81263.98","type":0,"microtimestamp":"1788481329090000","buy_order_id":2046551467757570,"sell_order_id":2046551452086274},"channel":"live_trades_btcusd","event":"trade"}`,
		prices{last: "81263.98"}},
	"bitstamp/bbo": {`{"data":{"timestamp":"1788481325","microtimestamp":"1788481325406795","bids":[["81254.37","0.56250000"],["81254.07","0.07500000"]],"asks":[["81263.98","0.68285797"],["81264.00","1.20000000"]]},"channel":"order_book_btcusd","event":"data"}`,
		prices{bid: "81254.37", ask: "81263.98"}},
}

// TestTailPresetChannels: for every channel of every preset, the preset's
// own extract and fields, applied to that channel's wire frame, give the
// line its prices. A channel without a frame here fails, so a new one is
// not left untested.
func TestTailPresetChannels(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range presets.All() {
		for _, ch := range p.Channels() {
			key := p.Name + "/" + ch
			seen[key] = true
			t.Run(key, func(t *testing.T) {
				node, err := p.Expand(ch)
				if err != nil {
					t.Fatal(err)
				}
				var keys struct {
					Extract string            `yaml:"extract"`
					Fields  map[string]string `yaml:"fields"`
				}
				if err := node.Decode(&keys); err != nil {
					t.Fatal(err)
				}
				sample, ok := presetFrames[key]
				if !ok {
					t.Fatalf("no wire frame for %s: add one (with its source) to presetFrames", key)
				}
				doc, ok := decodeData([]byte(sample.frame))
				if !ok {
					t.Fatalf("frame is not JSON")
				}
				toks, valid := parsePointer(keys.Extract)
				if !valid {
					t.Fatalf("extract %q", keys.Extract)
				}
				data, err := json.Marshal(lookupPointer(doc, toks)) // json.Number keeps the venue's digits
				if err != nil {
					t.Fatal(err)
				}
				f := parseFields(keys.Fields["last"], keys.Fields["bid"], keys.Fields["ask"])
				if f == nil {
					t.Fatalf("the preset has no usable fields: %v", keys.Fields)
				}
				if got := pickPrices(data, f); got != sample.want {
					t.Errorf("extract %q, fields %v: %+v, want %+v (data %s)", keys.Extract, keys.Fields, got, sample.want, data)
				}
			})
		}
	}
	for key := range presetFrames {
		if !seen[key] {
			t.Errorf("frame for %s, which no preset has", key)
		}
	}
}
