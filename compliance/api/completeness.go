package api

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/wxteams/wxteams/compliance/completeness"
)

// CompletenessFunc returns the completeness report of a day (YYYY-MM-DD, UTC): the archived one
// (archived true), or else one computed now and signed but not archived — provisional ("final":
// false, inside what is signed) while the day has not ended (cmd/wxteams wires the store and the
// signing key).
type CompletenessFunc func(ctx context.Context, day string) (report *completeness.Signed, archived bool, err error)

// CompletenessReply is GET /completeness's answer (and `wxteams completeness --json`'s): the signed report, and whether it is the one
// archived for the day.
type CompletenessReply struct {
	Archived bool `json:"archived"`
	*completeness.Signed
}

// completenessOf: GET /completeness?day=YYYY-MM-DD [yesterday] — the day's signed report.
func (a *API) completenessOf(w http.ResponseWriter, r *http.Request, c *call) int {
	if a.cfg.Completeness == nil {
		return writeError(w, http.StatusNotFound, "completeness reports are not available on this server")
	}
	now := a.cfg.Clock.Now()
	day := r.URL.Query().Get("day")
	if day == "" {
		day = completeness.DayOf(now.AddDate(0, 0, -1))
	}
	from, _, err := completeness.DayBounds(day)
	if err != nil {
		return writeError(w, http.StatusBadRequest, err.Error())
	}
	if from.After(now) {
		return writeError(w, http.StatusBadRequest, "day "+day+" has not begun yet (days are in UTC)")
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	signed, archived, err := a.cfg.Completeness(ctx, day)
	if err != nil {
		a.cfg.Log.Error("completeness report not made", zap.String("day", day), zap.Error(err))
		return writeError(w, http.StatusServiceUnavailable, "the completeness report of "+day+" could not be made now; the server's log says why")
	}
	if rep, err := signed.Open(nil); err == nil {
		c.count = len(rep.Gaps)
	}
	return writeJSON(w, http.StatusOK, CompletenessReply{Archived: archived, Signed: signed})
}
