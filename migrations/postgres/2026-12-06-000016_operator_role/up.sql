-- The operator role (ControlService: control, nothing else).
ALTER TABLE principals DROP CONSTRAINT principals_role_check;
ALTER TABLE principals ADD CONSTRAINT principals_role_check
    CHECK (role IN ('admin', 'reader', 'collector', 'operator'));
