DROP TABLE link_evidence;
