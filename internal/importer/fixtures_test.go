package importer

import "strings"

// sfHistory is a Salesforce OpportunityHistory export as the Data Export
// service (Setup > Data Export, OpportunityHistory.csv) and Data Loader
// write it: a header of the object's API field names, every value quoted,
// datetimes in ISO 8601 UTC with milliseconds, CloseDate as YYYY-MM-DD,
// Probability in percent, IsDeleted as true/false, CRLF line ends. The
// field list is the OpportunityHistory object's, from the Salesforce
// Object Reference (developer.salesforce.com, "OpportunityHistory":
// Amount, CloseDate, CreatedById, CreatedDate, ExpectedRevenue,
// ForecastCategory, Id, IsDeleted, OpportunityId, Probability, StageName,
// SystemModstamp; PrevAmount and PrevCloseDate since API 50.0;
// CurrencyIsoCode in multi-currency orgs). Stage and forecast category
// values are those of the standard Sales Process.
//
// Opportunity 0065g00000AAAAAAA1 is created, qualified, has its amount
// changed in the same stage, moves to proposal with a new close date, has
// its probability changed in the same stage and is won; its rows are not
// in time order. 0065g00000AAAAAAA2 is created and lost.
const sfHistory = "\"Id\",\"OpportunityId\",\"CreatedById\",\"CreatedDate\",\"StageName\",\"Amount\",\"ExpectedRevenue\",\"CloseDate\",\"Probability\",\"ForecastCategory\",\"IsDeleted\",\"SystemModstamp\",\"PrevAmount\",\"PrevCloseDate\"\r\n" +
	"\"0085g00000H1AAAAA1\",\"0065g00000AAAAAAA1\",\"0055g00000USER001\",\"2024-01-10T09:00:00.000Z\",\"Prospecting\",\"10000.00\",\"1000.00\",\"2024-06-30\",\"10\",\"Pipeline\",\"false\",\"2024-01-10T09:00:00.000Z\",\"\",\"\"\r\n" +
	"\"0085g00000H1AAAAA2\",\"0065g00000AAAAAAA1\",\"0055g00000USER001\",\"2024-02-01T10:30:00.000Z\",\"Qualification\",\"10000.00\",\"1000.00\",\"2024-06-30\",\"10\",\"Pipeline\",\"false\",\"2024-02-01T10:30:00.000Z\",\"10000.00\",\"2024-06-30\"\r\n" +
	"\"0085g00000H1AAAAA6\",\"0065g00000AAAAAAA1\",\"0055g00000USER001\",\"2024-05-20T08:00:00.000Z\",\"Closed Won\",\"12500.00\",\"12500.00\",\"2024-05-20\",\"100\",\"Closed\",\"false\",\"2024-05-20T08:00:00.000Z\",\"12500.00\",\"2024-07-31\"\r\n" +
	"\"0085g00000H1AAAAA3\",\"0065g00000AAAAAAA1\",\"0055g00000USER002\",\"2024-02-15T14:00:00.000Z\",\"Qualification\",\"12500.00\",\"1250.00\",\"2024-06-30\",\"10\",\"Pipeline\",\"false\",\"2024-02-15T14:00:00.000Z\",\"10000.00\",\"2024-06-30\"\r\n" +
	"\"0085g00000H1AAAAA4\",\"0065g00000AAAAAAA1\",\"0055g00000USER001\",\"2024-03-01T16:45:00.000Z\",\"Proposal/Price Quote\",\"12500.00\",\"9375.00\",\"2024-07-31\",\"75\",\"BestCase\",\"false\",\"2024-03-01T16:45:00.000Z\",\"12500.00\",\"2024-06-30\"\r\n" +
	"\"0085g00000H1AAAAA5\",\"0065g00000AAAAAAA1\",\"0055g00000USER001\",\"2024-04-02T11:00:00.000Z\",\"Proposal/Price Quote\",\"12500.00\",\"10000.00\",\"2024-07-31\",\"80\",\"BestCase\",\"false\",\"2024-04-02T11:00:00.000Z\",\"12500.00\",\"2024-07-31\"\r\n" +
	"\"0085g00000H2AAAAA1\",\"0065g00000AAAAAAA2\",\"0055g00000USER003\",\"2024-01-15T12:00:00.000Z\",\"Prospecting\",\"\",\"\",\"2024-03-31\",\"10\",\"Pipeline\",\"false\",\"2024-01-15T12:00:00.000Z\",\"\",\"\"\r\n" +
	"\"0085g00000H2AAAAA2\",\"0065g00000AAAAAAA2\",\"0055g00000USER003\",\"2024-03-05T12:00:00.000Z\",\"Closed Lost\",\"5000.00\",\"0.00\",\"2024-03-05\",\"0\",\"Omitted\",\"false\",\"2024-03-05T12:00:00.000Z\",\"\",\"2024-03-31\"\r\n"

// sfHistoryBad has one good row and a row for each way a row is refused,
// in the same Data Export shape (without the Prev* columns, as in orgs on
// API versions before 50.0).
const sfHistoryBad = `"Id","OpportunityId","CreatedById","CreatedDate","StageName","Amount","ExpectedRevenue","CloseDate","Probability","ForecastCategory","IsDeleted","SystemModstamp"
"0085g00000H3AAAAA1","0065g00000AAAAAAA3","0055g00000USER001","2024-01-10T09:00:00.000Z","Prospecting","100.00","10.00","2024-06-30","10","Pipeline","false","2024-01-10T09:00:00.000Z"
"0085g00000H3AAAAA2","0065g00000AAAAAAA3","0055g00000USER001","2024-01-11T09:00:00.000Z","Qualification","100.00","10.00","2024-06-30","10","Pipeline","true","2024-01-11T09:00:00.000Z"
"0085g00000H3AAAAA3","","0055g00000USER001","2024-01-12T09:00:00.000Z","Qualification","100.00","10.00","2024-06-30","10","Pipeline","false","2024-01-12T09:00:00.000Z"
"0085g00000H3AAAAA4","0065g00000AAAAAAA3","0055g00000USER001","12/01/2024","Qualification","100.00","10.00","2024-06-30","10","Pipeline","false","2024-01-12T09:00:00.000Z"
"0085g00000H3AAAAA5","0065g00000AAAAAAA3","0055g00000USER001","2024-01-13T09:00:00.000Z","Qualification","1.000,00","10.00","2024-06-30","10","Pipeline","false","2024-01-13T09:00:00.000Z"
"0085g00000H3AAAAA1","0065g00000AAAAAAA3","0055g00000USER001","2024-01-14T09:00:00.000Z","Qualification","100.00","10.00","2024-06-30","10","Pipeline","false","2024-01-14T09:00:00.000Z"
"0085g00000H3AAAAA7","0065g00000AAAAAAA3","0055g00000USER001","2024-01-15T09:00:00.000Z","Qualification","100.00"
"0085g00000H3AAAAA8","0065g00000AAAAAAA3","0055g00000USER001","2024-01-16T09:00:00.000Z","Qualification","100.00","10.00","2024-06-30","150","Pipeline","false","2024-01-16T09:00:00.000Z"
"0085g00000H3AAAAA9","0065g00000AAAAAAA3","0055g00000USER001","1960-01-16T09:00:00.000Z","Qualification","100.00","10.00","2024-06-30","10","Pipeline","false","2024-01-16T09:00:00.000Z"
`

// sfHistoryEUR is an export of a multi-currency org (CurrencyIsoCode
// column) whose stage names are German, as a German-language org's Data
// Export writes them; the test encodes it in Windows-1252, as Data Export
// does when the organization's export encoding is "ISO-8859-1 / Windows-1252".
const sfHistoryEUR = `"Id","OpportunityId","CreatedById","CreatedDate","StageName","Amount","ExpectedRevenue","CloseDate","Probability","ForecastCategory","IsDeleted","SystemModstamp","CurrencyIsoCode"
"0085g00000H4AAAAA1","0065g00000AAAAAAA4","0055g00000USER001","2024-01-10T09:00:00.000Z","Qualifizierung","2000.00","200.00","2024-06-30","10","Pipeline","false","2024-01-10T09:00:00.000Z","EUR"
"0085g00000H4AAAAA2","0065g00000AAAAAAA4","0055g00000USER001","2024-01-20T09:00:00.000Z","Angebot – Prüfung","2500.00","1250.00","2024-06-30","50","BestCase","false","2024-01-20T09:00:00.000Z","EUR"
`

// genericHistory is a "one row per change" export of another CRM, with a
// semicolon separator, European date-times and no row id column: the
// shape of a spreadsheet or a report export ("deal history" reports of
// Pipedrive and Zoho CRM have these columns). It goes with genericMapping.
const genericHistory = `Deal;Changed;Stage;Value;Currency;Owner;Expected close
D-1;03/01/2024 09:15;Lead;1000;EUR;alice;31/03/2024
D-1;10/01/2024 10:00;Demo;1000;EUR;alice;31/03/2024
D-1;12/01/2024 10:00;Demo;1000;EUR;bob;31/03/2024
D-1;20/02/2024 17:30;Won;1200;EUR;bob;31/03/2024
D-2;05/01/2024 09:00;Lead;;;carol;
D-2;not a date;Demo;;;carol;
`

const genericMapping = `shape: history
source: pipedrive-csv
columns:
  opportunity_id: Deal
  occurred_at: Changed
  stage: Stage
  amount: Value
  currency: Currency
  owner: Owner
  close_date: Expected close
time_layout: "02/01/2006 15:04"
date_layout: "02/01/2006"
delimiter: ";"
`

// dealsExport is a "one row per deal" export with the current stage and a
// few dates, the shape of a CRM's deals list exported to CSV (HubSpot's
// deals export has "Create Date", "Close Date", "Deal Stage" and, per
// stage, "Date entered <stage>" columns; Pipedrive's "Deal created",
// "Won time", "Lost time"). It goes with dealsMapping.
const dealsExport = `Deal ID,Deal Name,Deal Stage,Amount,Deal owner,Create Date,Date entered Demo,Date entered Proposal,Closed
101,Acme rollout,Closed Won,5000,u1,2024-01-02,2024-01-10,2024-02-01,2024-03-01
102,Globex pilot,Proposal,2000,u2,2024-01-05,2024-01-20,,
103,Initech,Demo,,u2,2024-02-05,,,
104,Umbrella,Negotiation,900,u1,2024-02-06,2024-02-08,,
101,Acme again,Demo,1,u1,2024-01-02,,,
105,Bad,Demo,1,u1,2024-01-02,someday,,
`

const dealsMapping = `shape: deals
source: hubspot-csv
currency: USD
columns:
  opportunity_id: Deal ID
  name: Deal Name
  stage: Deal Stage
  amount: Amount
  owner: Deal owner
  created_at: Create Date
  closed_at: Closed
stage_dates:
  Demo: Date entered Demo
  Proposal: Date entered Proposal
`

const attrMapping = `columns:
  row_id: Id
  opportunity_id: Deal
  occurred_at: Changed
  stage: Stage
  attributes:
    region: Region
    deal_type: Type
`

// attrHistory: the region moves, an empty type is unknown (unchanged),
// a value over the limit is refused.
var attrHistory = `Id,Deal,Changed,Stage,Region,Type
c1,D-1,2024-01-03,Lead,EMEA,new
c2,D-1,2024-01-10,Demo,EMEA,
c3,D-1,2024-01-12,Demo,APAC,new
c4,D-2,2024-01-12,Demo,` + strings.Repeat("x", 257) + `,new
`
