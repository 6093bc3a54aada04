"""The error codes DAL's router refuses with: (code, SQLSTATE). See docs/errors.md."""

NO_DATABASE = (1046, "3D000")        # ER_NO_DB_ERROR
BAD_DB = (1049, "42000")             # ER_BAD_DB_ERROR
ACCESS_DENIED = (1227, "42000")      # ER_SPECIFIC_ACCESS_DENIED_ERROR
NOT_SUPPORTED = (1235, "42000")      # ER_NOT_SUPPORTED_YET
