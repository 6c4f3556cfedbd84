SELECT ladder_version, count(),
	groupUniqArrayArray(arrayMap(c -> reinterpretAsUInt32(c), arrayFilter((c, a) -> a != 0, currencies, amounts)))
FROM opportunity_state
PREWHERE (opp_hash, version) NOT IN _superseded
WHERE tenant = @tenant AND _part IN @snapshot_parts
GROUP BY ladder_version
