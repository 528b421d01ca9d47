DROP INDEX principals_certificate_subject;
ALTER TABLE principals DROP COLUMN certificate_subject;
