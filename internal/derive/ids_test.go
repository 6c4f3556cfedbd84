package derive

import (
	"testing"

	"github.com/commitflow/commitflow/internal/event"
)

// pinnedHistory is a fixed history that gives a derived event of every
// type: a climb, a regression, a team change alone, a stall, a missed call,
// a win, a loss, a win again and a loss again.
func pinnedHistory() []event.Event {
	ann, bob, rep := buyer("ann@buyer.com"), buyer("bob@buyer.com"), seller("rep@seller.com")
	return []event.Event{
		created("o1", day(0), "Prospecting", 20000),
		call("c1", day(1), "Weekly sync", people(ann, rep), items(sItem("send_info", "Send the deck"))),
		stage("s1", day(3), "Perception Analysis"),
		contact("k1", day(3), "bob@buyer.com", "Champion"),
		stage("s2", day(4), "Needs Analysis"),
		ev("a1", day(5), &event.AmountChange{From: 20000, To: 25000}),
		updated("u1", day(5.5), &event.Opportunity{Team: "west"}),
		call("c2", day(6), "Pilot planning", people(bob, rep), items(bItem("pilot", "Bob runs the pilot", nil))),
		stage("s3", day(40), "Closed Won"),
		lost("l1", day(45), "Price"),
		won("w2", day(50)),
		stage("s4", day(55), "Closed Lost"),
	}
}

// TestPinnedIDs pins the hex ids of the derived events of a fixed history.
// Ids are a stored contract: a changed id retracts every stored event that
// had it and stores it again under the new one. A failure here means ids
// changed: that must be on purpose, and say so.
func TestPinnedIDs(t *testing.T) {
	want := []struct{ event, id string }{
		{"d0 deal.created open", "7599110629ab48646f1e6cc434a0b627"},
		{"d1 commitment.gained time open", "8bcb4cce1b4fa4033b0474e8b8065dfb"},
		{"d1 interaction.held explore continuation open", "1dedeee6334c170da9eade2587f3522e"},
		{"d1 commitment.missed explore seller_only_actions open", "ecb75e9d180482d44ff6ccf48c1e88cd"},
		{"d3 deal.updated stage open", "13ddfae7002d6ba431fc3bf140ee3fb6"},
		{"d3 commitment.gained invest open", "4865fc12909fb29e5b6b41eaac4ca75a"},
		{"d3 deal.single_threaded invest open", "98180163926855a450f666859f28655e"},
		{"d4 deal.updated stage open", "f2a357ec42f6d9620b48cfc093e055ba"},
		{"d4 stage.regressed change open", "6e915f8af39b7e29eb12a92f455848eb"},
		{"d5 deal.updated amount open", "08152869dc5afd2433f1b6757ef21e49"},
		{"d5.5 deal.updated team open", "b8a8df6cc12f49d727b9c3fce37fe9d9"},
		{"d6 interaction.held review advanced open", "f121aae32dcc4da1401ca0dabe297050"},
		{"d33 deal.stalled invest open", "b83b18ff99b9fd5082f440100463a49d"},
		{"d40 deal.updated stage open", "3a3b543232c633671281052380014a6e"},
		{"d40 commitment.gained decide open", "d6e6f4480ba21c29a551996ccecc5ac3"},
		{"d40 deal.closed won", "a28b1e1f231e878c796eefa3057f2a06"},
		{"d45 deal.closed Price lost", "5e977a4f4b2cca97a2bfd88047c90b9c"},
		{"d50 deal.closed won", "70cf1732f33600c2039be8e12f7d463b"}, // closed/won/2
		{"d55 deal.updated stage won", "4a5a92dc4bb2d1b3ea9618dbc911a7c4"},
		{"d55 deal.closed lost", "2b9c1430753ad76eb5971ceb6b240c02"}, // closed/lost/2
	}
	out := run(pinnedHistory(), day(90))
	if len(out) != len(want) {
		t.Errorf("%d derived events, want %d:\n%v", len(out), len(want), lines(out))
	}
	for i := range min(len(out), len(want)) {
		if got := line(out[i]) + " " + out[i].Status; got != want[i].event || out[i].ID != want[i].id {
			t.Errorf("event %d: %s id %s, want %s id %s", i, got, out[i].ID, want[i].event, want[i].id)
		}
	}
	// The discriminators README.md documents give the same ids.
	for _, c := range []struct {
		k    Kind
		disc string
		id   string
	}{
		{DealCreated, "created", "7599110629ab48646f1e6cc434a0b627"},
		{CommitmentGained, "gained/time", "8bcb4cce1b4fa4033b0474e8b8065dfb"},
		{InteractionHeld, "held/gong/c1", "1dedeee6334c170da9eade2587f3522e"},
		{CommitmentMissed, "missed/gong/c1", "ecb75e9d180482d44ff6ccf48c1e88cd"},
		{DealUpdated, "updated/stage/salesforce/s1", "13ddfae7002d6ba431fc3bf140ee3fb6"},
		{DealUpdated, "updated/team/salesforce/u1", "b8a8df6cc12f49d727b9c3fce37fe9d9"},
		{DealSingleThreaded, "single_threaded", "98180163926855a450f666859f28655e"},
		{StageRegressed, "regressed/salesforce/s2", "6e915f8af39b7e29eb12a92f455848eb"},
		{DealClosed, "closed/won", "a28b1e1f231e878c796eefa3057f2a06"},
		{DealClosed, "closed/lost", "5e977a4f4b2cca97a2bfd88047c90b9c"},
		{DealClosed, "closed/won/2", "70cf1732f33600c2039be8e12f7d463b"},
		{DealClosed, "closed/lost/2", "2b9c1430753ad76eb5971ceb6b240c02"},
	} {
		if got := ID(tTenant, tOpp, c.k, c.disc); got != c.id {
			t.Errorf("ID(%s, %s) = %s, want %s", c.k, c.disc, got, c.id)
		}
	}
}
