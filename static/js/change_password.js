// Forced password change page: after success the dashboard opens.
import { wirePasswordForm } from "./password_form.js";

wirePasswordForm({ onDone: () => location.assign("/") });
