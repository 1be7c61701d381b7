import './base.css';
import './components.css';
import './history.css';
import './sharing.css';
import './models.css';
