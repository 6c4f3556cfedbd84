SELECT _part,
	groupUniqArrayArray(arrayMap(c -> reinterpretAsUInt32(c), arrayFilter((c, a) -> a != 0, currencies, amounts))),
	toUInt32(max(latest_at)),
	groupUniqArrayIf(ladder_version, ladder_version != '')
FROM opportunity_state
WHERE tenant = @tenant AND _part IN @parts
GROUP BY _part
