package api

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// handleHealthz: 200 while the process serves.
func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`+"\n"))
}

// handleReadyz: 200 once every configured symbol has been live at least
// once; 503 (with the ones still waiting) before that and from the moment
// shutdown starts.
func (s *Server) handleReadyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if s.shuttingDown.Load() {
		writeErrorBody(w, &apiError{status: http.StatusServiceUnavailable, code: CodeShuttingDown, msg: "the relay is shutting down"})
		return
	}
	var waiting []string
	for _, st := range s.ups.Statuses() {
		if !st.EverLive {
			waiting = append(waiting, st.Symbol)
		}
	}
	if len(waiting) > 0 {
		var body struct {
			errorBody
			Waiting []string `json:"waiting"`
		}
		body.Error.Code = CodeNotReady
		body.Error.Message = fmt.Sprintf("%d symbols have not been live yet", len(waiting))
		body.Waiting = waiting
		b, _ := json.Marshal(body)
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, append(b, '\n'))
		return
	}
	writeJSON(w, http.StatusOK, []byte(`{"status":"ready"}`+"\n"))
}
