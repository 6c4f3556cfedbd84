package gen

import (
	"math/rand/v2"
	"strconv"
	"strings"
)

// The book of business: tenants with reps in teams, and accounts with their
// buying groups. Reps are built up front (a few hundred at most); accounts
// are derived on demand from (seed, tenant, account index), so memory does
// not grow with the number of opportunities.

// Segments.
const (
	segSMB = iota
	segMid
	segEnt
	numSegments
)

var segmentNames = [numSegments]string{"smb", "mid_market", "enterprise"}

var segmentTeamLabels = [numSegments]string{"SMB", "Mid-Market", "Enterprise"}

var regions = []string{"East", "West", "Central", "North", "South", "EMEA", "APAC", "LATAM"}

var firstNames = []string{
	"Aisha", "Alex", "Amara", "Ana", "Ben", "Carla", "Chen", "Chris", "Dana", "Daniel",
	"Deepa", "Diego", "Elena", "Emma", "Farah", "Felix", "Grace", "Hana", "Ivan", "Jamal",
	"Jana", "Jordan", "Julia", "Kai", "Kenji", "Lars", "Laura", "Leila", "Liam", "Lucia",
	"Maya", "Marco", "Mei", "Michael", "Nadia", "Noah", "Olga", "Omar", "Priya", "Rafael",
	"Rosa", "Sam", "Sara", "Sofia", "Tariq", "Tom", "Uma", "Victor", "Yara", "Zoe",
}

var lastNames = []string{
	"Adams", "Alvarez", "Andersson", "Baker", "Bauer", "Chen", "Costa", "Diaz", "Dubois", "Evans",
	"Fischer", "Garcia", "Gupta", "Hansen", "Hughes", "Ito", "Jensen", "Kim", "Kowalski", "Larsen",
	"Lopez", "Martin", "Meyer", "Moreau", "Murphy", "Nakamura", "Nguyen", "Novak", "Okafor", "Olsen",
	"Patel", "Perez", "Quinn", "Rossi", "Santos", "Schmidt", "Silva", "Singh", "Sato", "Taylor",
	"Thompson", "Tanaka", "Varga", "Wagner", "Walsh", "Weber", "Wilson", "Wong", "Young", "Zimmer",
}

var accountPrefixes = []string{
	"Acorn", "Apex", "Aurora", "Beacon", "Birch", "Blue Harbor", "Brightline", "Cascade", "Cedar", "Clearwater",
	"Cobalt", "Copper", "Crescent", "Delta", "Evergreen", "Falcon", "Fieldstone", "Granite", "Harbor", "Highland",
	"Horizon", "Ironwood", "Juniper", "Keystone", "Lakeside", "Lighthouse", "Maple", "Meridian", "Northwind", "Oakridge",
	"Orion", "Pacific", "Pinnacle", "Prairie", "Quarry", "Redwood", "Ridgeline", "Riverbend", "Sierra", "Silverline",
	"Stonebridge", "Summit", "Sunrise", "Tidewater", "Trailhead", "Vantage", "Westfield", "Willow", "Zenith", "Bluebird",
}

var accountCores = []string{
	"Logistics", "Health", "Financial", "Manufacturing", "Energy", "Foods", "Insurance", "Retail", "Labs", "Analytics",
	"Software", "Freight", "Pharma", "Media", "Capital", "Construction", "Telecom", "Hospitality", "Robotics", "Biotech",
	"Dental", "Utilities", "Mobility", "Security", "Education", "Realty", "Aerospace", "Marine", "Textiles", "Water",
}

var accountSuffixes = []string{"", " Group", " Inc", " Corp", " Partners", " Systems", " Holdings", " Co", " Solutions", " Industries"}

var leadSources = []string{
	"Web", "Web", "Inbound", "Outbound", "Outbound", "Partner Referral", "Customer Referral", "Event", "Webinar", "Phone Inquiry",
}

var products = [numSegments][]string{
	{"Starter", "Core Platform", "Core Platform", "Analytics Add-on"},
	{"Core Platform", "Core Platform", "Analytics Add-on", "Professional", "Integration Pack"},
	{"Enterprise Suite", "Enterprise Suite", "Core Platform", "Analytics Add-on", "Professional Services"},
}

var competitors = []string{"PipelineIQ", "Forecastly", "DealDesk", "RevPath", "Clarion CRM", "in-house build"}

// Contact roles, as in the Salesforce opportunity contact role picklist.
const (
	roleChampion      = "Champion"
	roleDecisionMaker = "Decision Maker"
	roleEconomicBuyer = "Economic Buyer"
	roleTechnical     = "Technical Buyer"
	roleInfluencer    = "Influencer"
	roleEvaluator     = "Evaluator"
	roleExecSponsor   = "Executive Sponsor"
)

// buyerRoles is the order in which an account's buying group is filled:
// the first person is the champion who brought the deal in.
var buyerRoles = []string{
	roleChampion, roleDecisionMaker, roleEconomicBuyer, roleTechnical, roleInfluencer,
	roleEvaluator, roleInfluencer, roleExecSponsor, roleTechnical, roleInfluencer,
}

var titlesByRole = map[string][]string{
	roleChampion:      {"Operations Manager", "Head of Revenue Operations", "Sales Operations Manager", "Director of Operations", "Program Manager"},
	roleDecisionMaker: {"VP Operations", "VP Sales", "Director of IT", "Head of Customer Success", "General Manager"},
	roleEconomicBuyer: {"CFO", "VP Finance", "COO", "Chief Revenue Officer", "Managing Director"},
	roleTechnical:     {"IT Director", "Solutions Architect", "Head of Security", "Data Engineering Lead", "CTO"},
	roleInfluencer:    {"Business Analyst", "Team Lead", "Senior Analyst", "Operations Specialist", "Project Manager"},
	roleEvaluator:     {"Systems Analyst", "Procurement Manager", "IT Manager", "Finance Manager"},
	roleExecSponsor:   {"CEO", "President", "Chief Operating Officer", "SVP Operations"},
}

// person is one buyer or seller.
type person struct {
	id    string
	first string
	name  string
	email string
	title string
	role  string
}

// rep is a seller who owns opportunities, with the team's sales engineer
// and manager who join some calls.
type rep struct {
	person
	team    string
	segment int
	se      *person
	manager *person
}

// tenant is one selling company and its sales org.
type tenant struct {
	index     int
	name      string
	company   string
	domain    string
	reps      []*rep
	bySegment [numSegments][]*rep
}

// account is a buying company; derived on demand, never stored.
type account struct {
	index   uint64
	name    string
	domain  string
	segment int
	people  []person
}

func randomName(r *rand.Rand) (first, last string) {
	return firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
}

func emailLocal(first, last string) string {
	return strings.ToLower(first) + "." + strings.ToLower(last)
}

// newTenant builds tenant index ti with about nReps reps.
func newTenant(seedKey uint64, ti int, name string, nReps int) *tenant {
	r := rand.New(rand.NewPCG(seedKey^nsUser, uint64(ti)))
	t := &tenant{index: ti, name: name}
	t.company = titleCase(name)
	t.domain = strings.ReplaceAll(name, "_", "-") + ".io"
	share := [numSegments]float64{0.4, 0.35, 0.25}
	userSeq := uint64(ti) << 32
	seen := make(map[string]int)
	newUser := func(title string) *person {
		first, last := randomName(r)
		userSeq++
		local := emailLocal(first, last)
		if n := seen[local]; n > 0 {
			seen[local] = n + 1
			local += strconv.Itoa(n + 1)
		} else {
			seen[local] = 1
		}
		return &person{
			id:    sfID("005", mix(seedKey^nsUser^userSeq)),
			first: first,
			name:  first + " " + last,
			email: local + "@" + t.domain,
			title: title,
		}
	}
	for seg := range numSegments {
		n := max(2, int(float64(nReps)*share[seg]+0.5))
		teams := (n + 5) / 6
		for tm := range teams {
			team := segmentTeamLabels[seg] + " " + regions[tm%len(regions)]
			if tm >= len(regions) {
				team += " " + strconv.Itoa(tm/len(regions)+1)
			}
			se := newUser("Solutions Engineer")
			mgr := newUser("Sales Manager")
			if seg == segEnt {
				mgr.title = "Regional Vice President"
			}
			for i := tm * 6; i < min(n, (tm+1)*6); i++ {
				title := "Account Executive"
				switch {
				case seg == segEnt:
					title = "Enterprise Account Executive"
				case seg == segSMB && r.IntN(3) == 0:
					title = "Senior Account Executive"
				}
				rp := &rep{person: *newUser(title), team: team, segment: seg, se: se, manager: mgr}
				t.reps = append(t.reps, rp)
				t.bySegment[seg] = append(t.bySegment[seg], rp)
			}
		}
	}
	return t
}

func titleCase(s string) string {
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == '-' || r == '_' })
	for i, p := range parts {
		parts[i] = strings.ToUpper(p[:1]) + p[1:]
	}
	if len(parts) == 0 {
		return "Demo"
	}
	return strings.Join(parts, " ")
}

// accountName returns a distinct name and domain for every account index:
// a bijection onto the name combinations, with a number appended once they
// run out.
func accountName(j uint64) (name, domain string) {
	np, nc, ns := uint64(len(accountPrefixes)), uint64(len(accountCores)), uint64(len(accountSuffixes))
	combos := np * nc * ns
	k := (j*7919 + 13) % combos // 7919 is prime and does not divide combos
	round := j / combos
	p, c, s := k%np, (k/np)%nc, k/(np*nc)
	name = accountPrefixes[p] + " " + accountCores[c] + accountSuffixes[s]
	slug := strings.ToLower(strings.ReplaceAll(accountPrefixes[p], " ", "") + accountCores[c])
	if round > 0 {
		name += " " + strconv.FormatUint(round+1, 10)
		slug += strconv.FormatUint(round+1, 10)
	}
	return name, slug + ".com"
}

// accountSegment is the segment of account j: half are small, three in ten
// mid-market, two in ten enterprise.
func accountSegment(j uint64) int {
	switch j % 10 {
	case 0, 1, 2, 3, 4:
		return segSMB
	case 5, 6, 7:
		return segMid
	}
	return segEnt
}

// User is a seller of a generated tenant as a CRM's users export lists
// them: the reps who own the opportunities (their ids are the owner ids
// of the events), and their teams' sales engineers and managers.
type User struct {
	ID, Name, Email, Team string
	// Manager is the id of the user's manager, "" for a manager.
	Manager string
}

// Users returns the users of each tenant cfg generates, by tenant name:
// the same people, with the same ids, as the events Generate makes for
// cfg name.
func Users(cfg Config) (map[string][]User, error) {
	g, err := newGenerator(cfg)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]User, len(g.tenants))
	for _, t := range g.tenants {
		seen := map[string]bool{}
		var us []User
		add := func(p *person, team, manager string) {
			if !seen[p.id] {
				seen[p.id] = true
				us = append(us, User{ID: p.id, Name: p.name, Email: p.email, Team: team, Manager: manager})
			}
		}
		for _, r := range t.reps {
			add(&r.person, r.team, r.manager.id)
			add(r.se, r.team, r.manager.id)
			add(r.manager, r.team, "")
		}
		out[t.name] = us
	}
	return out, nil
}
