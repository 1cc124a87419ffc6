DROP TABLE manual_link;
