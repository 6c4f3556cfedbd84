SELECT _part,
	groupUniqArrayArray(arrayMap(c -> reinterpretAsUInt32(c), arrayFilter((c, a) -> a != 0, currencies, amounts)))
FROM opportunity_state
WHERE tenant = @tenant AND _part IN @parts
GROUP BY _part
