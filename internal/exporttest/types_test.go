package exporttest

import "time"

// The oracle's answers, shaped as the API's JSON (definitions aside). They
// are the test's own types, not the metrics package's, so that the
// comparison is with the JSON the API serves.

type bucket struct {
	Label   string `json:"label"`
	MinDays int    `json:"min_days"`
	MaxDays *int   `json:"max_days"`
	Count   int64  `json:"count"`
}

type funnelResult struct {
	Steps []funnelStep `json:"steps"`
}

type funnelStep struct {
	FromStep  string `json:"from_step"`
	FromIndex int    `json:"from_index"`
	ToStep    string `json:"to_step"`
	ToIndex   int    `json:"to_index"`
	funnelCounts
	Groups []funnelGroup `json:"groups,omitempty"`
}

type funnelGroup struct {
	Period string `json:"period,omitempty"`
	Key    string `json:"key"`
	funnelCounts
}

type funnelCounts struct {
	Reached                     int64                    `json:"reached"`
	Converted                   int64                    `json:"converted"`
	StillOpen                   int64                    `json:"still_open"`
	Dropped                     int64                    `json:"dropped"`
	Skipped                     int64                    `json:"skipped"`
	ReachedAmount               *float64                 `json:"reached_amount"`
	ConvertedAmount             *float64                 `json:"converted_amount"`
	StillOpenAmount             *float64                 `json:"still_open_amount"`
	DroppedAmount               *float64                 `json:"dropped_amount"`
	SkippedAmount               *float64                 `json:"skipped_amount"`
	ConversionRateDecided       *float64                 `json:"conversion_rate_decided"`
	ConversionRateReached       *float64                 `json:"conversion_rate_reached"`
	AmountConversionRateDecided *float64                 `json:"amount_conversion_rate_decided"`
	AmountConversionRateReached *float64                 `json:"amount_conversion_rate_reached"`
	AmountsByCurrency           map[string]funnelAmounts `json:"amounts_by_currency"`
	TimeToConvert               timeToConvert            `json:"time_to_convert"`
}

type funnelAmounts struct {
	ReachedAmount               float64  `json:"reached_amount"`
	ConvertedAmount             float64  `json:"converted_amount"`
	StillOpenAmount             float64  `json:"still_open_amount"`
	DroppedAmount               float64  `json:"dropped_amount"`
	SkippedAmount               float64  `json:"skipped_amount"`
	AmountConversionRateDecided *float64 `json:"amount_conversion_rate_decided"`
	AmountConversionRateReached *float64 `json:"amount_conversion_rate_reached"`
}

type timeToConvert struct {
	N         int64    `json:"n"`
	Skipped   int64    `json:"skipped"`
	Median    *float64 `json:"median_days"`
	P75       *float64 `json:"p75_days"`
	P90       *float64 `json:"p90_days"`
	Histogram []bucket `json:"histogram"`
}

type stallsResult struct {
	Open              int64                   `json:"open"`
	OpenAmount        *float64                `json:"open_amount"`
	Stalled           int64                   `json:"stalled"`
	StalledAmount     *float64                `json:"stalled_amount"`
	AmountsByCurrency map[string]stallAmounts `json:"amounts_by_currency"`
	Steps             []stallStep             `json:"steps"`
	Page              int                     `json:"page"`
	PageSize          int                     `json:"page_size"`
	Deals             []stalledDeal           `json:"deals"`
}

type stallStep struct {
	StepIndex           int                     `json:"step_index"`
	Step                string                  `json:"step"`
	Open                int64                   `json:"open"`
	OpenAmount          *float64                `json:"open_amount"`
	DaysSinceCommitment []bucket                `json:"days_since_commitment"`
	Stalled             int64                   `json:"stalled"`
	StalledAmount       *float64                `json:"stalled_amount"`
	AmountsByCurrency   map[string]stallAmounts `json:"amounts_by_currency"`
}

type stallAmounts struct {
	OpenAmount    float64 `json:"open_amount"`
	StalledAmount float64 `json:"stalled_amount"`
}

type stalledDeal struct {
	OpportunityID       string    `json:"opportunity_id"`
	OwnerID             string    `json:"owner_id"`
	Team                string    `json:"team"`
	Amount              float64   `json:"amount"`
	Currency            string    `json:"currency"`
	StepIndex           int       `json:"step_index"`
	Step                string    `json:"step"`
	DaysSinceCommitment int64     `json:"days_since_commitment"`
	StalledSince        time.Time `json:"stalled_since"`
}

type movementResult struct {
	Total  movementCounts `json:"total"`
	ByStep []movementStep `json:"by_step"`
}

type movementStep struct {
	StepIndex int    `json:"step_index"`
	Step      string `json:"step"`
	movementCounts
}

type movementCounts struct {
	New               int64                      `json:"new"`
	NewAmount         *float64                   `json:"new_amount"`
	Advanced          int64                      `json:"advanced"`
	AdvancedAmount    *float64                   `json:"advanced_amount"`
	Regressed         int64                      `json:"regressed"`
	RegressedAmount   *float64                   `json:"regressed_amount"`
	Stalled           int64                      `json:"stalled"`
	StalledAmount     *float64                   `json:"stalled_amount"`
	PulledIn          int64                      `json:"pulled_in"`
	PulledInAmount    *float64                   `json:"pulled_in_amount"`
	PushedOut         int64                      `json:"pushed_out"`
	PushedOutAmount   *float64                   `json:"pushed_out_amount"`
	Won               int64                      `json:"won"`
	WonAmount         *float64                   `json:"won_amount"`
	Lost              int64                      `json:"lost"`
	LostAmount        *float64                   `json:"lost_amount"`
	AmountsByCurrency map[string]movementAmounts `json:"amounts_by_currency"`
}

type movementAmounts struct {
	NewAmount       float64 `json:"new_amount"`
	AdvancedAmount  float64 `json:"advanced_amount"`
	RegressedAmount float64 `json:"regressed_amount"`
	StalledAmount   float64 `json:"stalled_amount"`
	PulledInAmount  float64 `json:"pulled_in_amount"`
	PushedOutAmount float64 `json:"pushed_out_amount"`
	WonAmount       float64 `json:"won_amount"`
	LostAmount      float64 `json:"lost_amount"`
}

type missedResult struct {
	Total    missedRow   `json:"total"`
	ByStep   []missedRow `json:"by_step"`
	ByReason []missedRow `json:"by_reason"`
	ByOwner  []missedRow `json:"by_owner"`
}

type missedRow struct {
	Key                string                   `json:"key"`
	StepIndex          int                      `json:"step_index,omitempty"`
	Missed             int64                    `json:"missed"`
	Deals              int64                    `json:"deals"`
	ValueAtStake       *float64                 `json:"value_at_stake"`
	AmountsByCurrency  map[string]missedAmounts `json:"amounts_by_currency"`
	MissedInteractions int64                    `json:"missed_interactions"`
	Interactions       int64                    `json:"interactions"`
	MissRate           *float64                 `json:"miss_rate"`
}

type missedAmounts struct {
	ValueAtStake float64 `json:"value_at_stake"`
}

type cycleResult struct {
	FromStep  string `json:"from_step"`
	FromIndex int    `json:"from_index"`
	cycleOutcomes
	Groups []cycleGroup `json:"groups,omitempty"`
}

type cycleGroup struct {
	Key string `json:"key"`
	cycleOutcomes
}

type cycleOutcomes struct {
	Won    cycleTime `json:"won"`
	Lost   cycleTime `json:"lost"`
	Closed cycleTime `json:"closed"`
}

type cycleTime struct {
	N          int64    `json:"n"`
	NotReached int64    `json:"not_reached"`
	Median     *float64 `json:"median_days"`
	P75        *float64 `json:"p75_days"`
	P90        *float64 `json:"p90_days"`
}

type stageHistoryResult struct {
	stageHistory
	Groups []stageHistoryGroup `json:"groups,omitempty"`
}

type stageHistoryGroup struct {
	Key string `json:"key"`
	stageHistory
}

type stageHistory struct {
	Total       stageTotals       `json:"total"`
	Stages      []stageStats      `json:"stages"`
	Transitions []stageTransition `json:"transitions"`
}

type stageTotals struct {
	Deals     int64 `json:"deals"`
	Entries   int64 `json:"entries"`
	ReEntries int64 `json:"re_entries"`
	Moves     int64 `json:"moves"`
	Forward   int64 `json:"forward"`
	Backward  int64 `json:"backward"`
	Lateral   int64 `json:"lateral"`
	Unordered int64 `json:"unordered"`
}

type stageStats struct {
	Stage       string    `json:"stage"`
	StepIndex   int       `json:"step_index"`
	Step        string    `json:"step"`
	Entries     int64     `json:"entries"`
	Initial     int64     `json:"initial"`
	Backward    int64     `json:"backward"`
	Deals       int64     `json:"deals"`
	ReEntries   int64     `json:"re_entries"`
	Current     int64     `json:"current"`
	TimeInStage stageTime `json:"time_in_stage"`
}

type stageTime struct {
	N      int64    `json:"n"`
	Median *float64 `json:"median_days"`
	P75    *float64 `json:"p75_days"`
	P90    *float64 `json:"p90_days"`
}

type stageTransition struct {
	From          string `json:"from"`
	To            string `json:"to"`
	FromStepIndex int    `json:"from_step_index"`
	ToStepIndex   int    `json:"to_step_index"`
	Direction     string `json:"direction"`
	Count         int64  `json:"count"`
}

// crmGroup is the CRM-weighted pipeline of a set of open deals.
type crmGroup struct {
	Deals       int     `json:"deals"`
	Amount      float64 `json:"amount"`
	CRMWeighted float64 `json:"crm_weighted"`
}

// crmPipeline is the stage-weighted side of /v1/forecast's pipeline, its
// breakdowns keyed by their key.
type crmPipeline struct {
	Total         crmGroup            `json:"total"`
	ByOwner       map[string]crmGroup `json:"by_owner"`
	ByTeam        map[string]crmGroup `json:"by_team"`
	ByClosePeriod map[string]crmGroup `json:"by_close_period"`
}

// dealList is a page of GET /v1/deals (its filter echo aside).
type dealList struct {
	Total    int64     `json:"total"`
	Page     int       `json:"page"`
	PageSize int       `json:"page_size"`
	Deals    []dealRow `json:"deals"`
}

type dealRow struct {
	OpportunityID       string  `json:"opportunity_id"`
	Name                string  `json:"name"`
	OwnerID             string  `json:"owner_id"`
	Team                string  `json:"team"`
	Amount              float64 `json:"amount"`
	Currency            string  `json:"currency"`
	CloseDate           *string `json:"close_date"`
	Stage               string  `json:"stage"`
	Status              string  `json:"status"`
	StepIndex           int     `json:"step_index"`
	Step                string  `json:"step"`
	DaysSinceCommitment int64   `json:"days_since_commitment"`
}

// dealView is GET /v1/deals/{id}: facts, steps, misses and stage
// history.
type dealView struct {
	OpportunityID       string         `json:"opportunity_id"`
	Name                string         `json:"name"`
	Facts               dealFacts      `json:"facts"`
	HighestStepIndex    int            `json:"highest_step_index"`
	HighestStep         string         `json:"highest_step"`
	DaysSinceCommitment int64          `json:"days_since_commitment"`
	Steps               []stepProgress `json:"steps"`
	Misses              []dealMiss     `json:"misses"`
	StageHistory        []stageEntry   `json:"stage_history"`
}

type dealFacts struct {
	Stage       string            `json:"stage"`
	Status      string            `json:"status"`
	Amount      float64           `json:"amount"`
	Currency    string            `json:"currency"`
	CloseDate   *string           `json:"close_date"`
	OwnerID     string            `json:"owner_id"`
	Team        string            `json:"team"`
	Segment     string            `json:"segment"`
	Source      string            `json:"source"`
	Product     string            `json:"product"`
	Probability float64           `json:"probability"`
	Attributes  map[string]string `json:"attributes"`
	CreatedAt   *time.Time        `json:"created_at"`
}

type stepProgress struct {
	StepIndex int        `json:"step_index"`
	Step      string     `json:"step"`
	ReachedAt *time.Time `json:"reached_at"`
	GainedAt  *time.Time `json:"gained_at"`
	Skipped   bool       `json:"skipped"`
}

type dealMiss struct {
	At            time.Time `json:"at"`
	Step          string    `json:"step"`
	StepIndex     int       `json:"step_index"`
	Reason        string    `json:"reason"`
	InteractionID string    `json:"interaction_id"`
}

type stageEntry struct {
	At    time.Time `json:"at"`
	Stage string    `json:"stage"`
}
